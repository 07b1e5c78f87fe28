// A JVM HTTP server that starts slowly because it builds real state first: a catalogue of
// 1M items in a HashMap keyed by SKU number. Everything comes from a seeded PRNG, so the
// state (and its fingerprint) is the same on every run with the same WORK_SCALE. Only the
// JDK is used (com.sun.net.httpserver).
//
// Env: PORT (default 8080; 0 picks a free port), WORK_SCALE (default 1).
// On SIGTERM the JVM runs its shutdown hooks (ours stops the HTTP server) and exits with 143.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

public final class SlowServer {
  private static final String HOST = "127.0.0.1";
  private static final int BASE_ITEM_COUNT = 1_000_000;

  /** One catalogue entry; the map key is its SKU number. */
  record Item(int id, int score, int priceCents, int category) {}

  record State(Map<Integer, Item> bySku, String fingerprint) {}

  /** splitmix64: a tiny seedable PRNG whose output is fixed by its algorithm, not by the JDK. */
  static final class Random64 {
    private long state;

    Random64(long seed) {
      state = seed;
    }

    long next() {
      long z = (state += 0x9e3779b97f4a7c15L);
      z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
      z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
      return z ^ (z >>> 31);
    }

    int nextInt(int bound) {
      return (int) Long.remainderUnsigned(next(), bound);
    }
  }

  /** SKU numbers look random but are unique: multiplying by an odd constant is a bijection on int. */
  static int skuOf(int id) {
    return id * 0x9e3779b1;
  }

  /** Fills the map, then reads every item back through it to take the state's fingerprint. */
  static State buildState(double workScale) throws NoSuchAlgorithmException {
    int count = (int) Math.round(BASE_ITEM_COUNT * workScale);
    Random64 random = new Random64(0x5eedL);
    Map<Integer, Item> bySku = new HashMap<>();
    for (int id = 0; id < count; id++) {
      bySku.put(skuOf(id), new Item(id, random.nextInt(1_000_000), random.nextInt(100_000), random.nextInt(64)));
    }
    return new State(bySku, fingerprint(bySku, count));
  }

  /** sha256 over every item's fields, looked up by SKU in id order: hex, first 16 characters. */
  static String fingerprint(Map<Integer, Item> bySku, int count) throws NoSuchAlgorithmException {
    MessageDigest digest = MessageDigest.getInstance("SHA-256");
    ByteBuffer pending = ByteBuffer.allocate(64 * 1024);
    pending.putInt(bySku.size());
    for (int id = 0; id < count; id++) {
      Item item = bySku.get(skuOf(id));
      if (item == null || item.id() != id) throw new IllegalStateException("item " + id + " is missing");
      if (pending.remaining() < 12) {
        digest.update(pending.flip());
        pending.clear();
      }
      pending.putInt(item.score()).putInt(item.priceCents()).putInt(item.category());
    }
    digest.update(pending.flip());
    return HexFormat.of().formatHex(digest.digest()).substring(0, 16);
  }

  static double readNumberEnv(String name, double fallback) {
    String raw = System.getenv(name);
    if (raw == null || raw.isEmpty()) return fallback;
    try {
      double value = Double.parseDouble(raw);
      if (Double.isFinite(value) && value >= 0) return value;
    } catch (NumberFormatException ignored) {
      // Reported below.
    }
    System.err.println(name + " must be a non-negative number, got \"" + raw + "\"");
    System.exit(2);
    return fallback;
  }

  static void send(HttpExchange exchange, int status, String contentType, String body) throws IOException {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    exchange.getResponseHeaders().set("content-type", contentType);
    exchange.sendResponseHeaders(status, bytes.length);
    try (OutputStream out = exchange.getResponseBody()) {
      out.write(bytes);
    }
  }

  public static void main(String[] args) throws Exception {
    double portNumber = readNumberEnv("PORT", 8080);
    if (portNumber != Math.rint(portNumber) || portNumber > 65535) {
      System.err.println("PORT must be an integer from 0 to 65535, got \"" + System.getenv("PORT") + "\"");
      System.exit(2);
    }
    double workScale = readNumberEnv("WORK_SCALE", 1);

    long startedAt = System.currentTimeMillis();
    State state = buildState(workScale);
    long pid = ProcessHandle.current().pid();
    AtomicLong requests = new AtomicLong();
    long[] readyAt = {0};

    HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getByName(HOST), (int) portNumber), 0);
    server.createContext("/", exchange -> {
      long served = requests.incrementAndGet();
      String path = exchange.getRequestURI().getPath();
      boolean isGet = exchange.getRequestMethod().equals("GET");
      if (isGet && path.equals("/")) {
        String body = String.format(
            Locale.ROOT,
            "{\"pid\":%d,\"fingerprint\":\"%s\",\"startedAt\":%d,\"readyAt\":%d,\"requests\":%d}",
            pid, state.fingerprint(), startedAt, readyAt[0], served);
        send(exchange, 200, "application/json", body);
      } else if (isGet && path.equals("/healthz")) {
        send(exchange, 200, "text/plain", "ok");
      } else {
        send(exchange, 404, "text/plain", "not found");
      }
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> server.stop(0)));
    // The socket is bound and listening since create(); start() begins accepting.
    readyAt[0] = System.currentTimeMillis();
    server.start();
    System.out.println("listening on http://" + HOST + ":" + server.getAddress().getPort());
    System.out.flush();
  }
}
