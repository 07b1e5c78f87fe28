package warmstart.agent;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.instrument.Instrumentation;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * warmstart's Java agent (JAVA_TOOL_OPTIONS=-javaagent:...): the JVM's side of the control
 * channel in src/runtime/protocol.ts. On SIGURG (a checkpoint) a thread of its own acks and
 * blocks in a 1-byte read of the down pipe; a restored copy reads "restored" from the fresh
 * pipe and reseeds what the JDK keeps in static state: Math.random's and StrictMath.random's
 * generators, ThreadLocalRandom (its seeder and every live thread's seed), the default seeds
 * of new Random, SplittableRandom and the jdk.random generators, Collections.shuffle's
 * generator. What the app holds itself (a Random or a SHA1PRNG SecureRandom it created before
 * the checkpoint) cannot be reached: docs/uniqueness.md. The agent cannot stop the app's
 * threads, so unlike Node's runtime it cannot keep a request from meeting the old state in the
 * moment between the restore and its reseed.
 */
public final class WarmstartAgent {
  private static final int PROTOCOL_VERSION = 1;
  private static final AtomicBoolean isBusy = new AtomicBoolean();
  private static Instrumentation instrumentation;
  /** The inherited pipes themselves, never opened again through /proc: opening a pipe whose
   * reader is gone (warmstart exited after --detach) would block the JVM. Never closed. */
  private static FileInputStream down;
  private static FileOutputStream up;

  private WarmstartAgent() {}

  public static void premain(String arguments, Instrumentation given) {
    String control = System.getenv("WARMSTART_CONTROL");
    if (control == null) return;
    String[] parts = control.split(":");
    if (parts.length != 3 || !parts[0].equals(String.valueOf(PROTOCOL_VERSION))) return;
    // A parent may have closed them (Python's subprocess does), or reused the numbers.
    if (!isPipe(parts[1]) || !isPipe(parts[2])) return;
    instrumentation = given;
    try {
      given.redefineModule(
          Object.class.getModule(), Set.of(), Map.of(), Map.of("java.io", Set.of(WarmstartAgent.class.getModule())), Set.of(), Map.of());
      Constructor<FileDescriptor> fromInt = FileDescriptor.class.getDeclaredConstructor(int.class);
      fromInt.setAccessible(true);
      down = new FileInputStream(fromInt.newInstance(Integer.parseInt(parts[1])));
      up = new FileOutputStream(fromInt.newInstance(Integer.parseInt(parts[2])));
    } catch (ReflectiveOperationException | RuntimeException error) {
      System.err.println("warmstart: the Java agent cannot use the control pipes: " + error);
      return;
    }
    sun.misc.Signal.handle(new sun.misc.Signal("URG"), signal -> onCheckpointRequest());
    send("hello " + pid() + " jvm " + PROTOCOL_VERSION);
  }

  /** The packages whose static state the reseed sets, opened to this agent alone (at checkpoint
   * time: not a cost of the JVM's start). */
  private static void openToAgent() {
    Module agent = WarmstartAgent.class.getModule();
    Module base = Object.class.getModule();
    instrumentation.redefineModule(
        base,
        Set.of(),
        Map.of(),
        Map.of(
            "java.lang", Set.of(agent),
            "java.util", Set.of(agent),
            "java.util.concurrent", Set.of(agent)),
        Set.of(),
        Map.of());
    ModuleLayer.boot()
        .findModule("jdk.random")
        .ifPresent(
            random ->
                instrumentation.redefineModule(
                    random, Set.of(), Map.of(), Map.of("jdk.random", Set.of(agent)), Set.of(), Map.of()));
  }

  private static void onCheckpointRequest() {
    if (!isBusy.compareAndSet(false, true)) return;
    Thread thread = new Thread(WarmstartAgent::checkpoint, "warmstart-checkpoint");
    thread.setDaemon(true);
    thread.start();
  }

  private static void checkpoint() {
    try {
      openToAgent();
      send("checkpoint-ready " + pid());
      int read = down.read();
      String verdict = read == 'R' ? "restored" : read == 'D' ? "saved" : "cancelled";
      long startedNs = System.nanoTime();
      List<String> failures = new ArrayList<>();
      boolean isReseeded = !verdict.equals("restored") || reseed(failures);
      double reseedMs = (System.nanoTime() - startedNs) / 1e6;
      send(
          "resumed " + pid() + " " + verdict + " {\"isReseeded\":" + isReseeded
              + ",\"failures\":" + toJson(failures) + ",\"reseedMs\":" + reseedMs + "}");
    } catch (IOException | RuntimeException error) {
      send("checkpoint-failed " + pid() + " " + quote("warmstart's Java agent: " + error));
    } finally {
      isBusy.set(false);
    }
  }

  /** Returns whether Math.random's generator (the one every JVM has) was reseeded. */
  static boolean reseed(List<String> failures) {
    Seeds seeds;
    try {
      seeds = new Seeds();
    } catch (IOException error) {
      failures.add("cannot read /dev/urandom: " + error);
      return false;
    }
    boolean isMathReseeded = reseedRandom("java.lang.Math$RandomNumberGeneratorHolder", "randomNumberGenerator", seeds, failures);
    reseedRandom("java.lang.StrictMath$RandomNumberGeneratorHolder", "randomNumberGenerator", seeds, failures);
    reseedRandom("java.util.Collections", "r", seeds, failures);
    setAtomicLong("java.util.Random", "seedUniquifier", seeds, failures);
    setAtomicLong("java.util.SplittableRandom", "defaultGen", seeds, failures);
    setAtomicLong("java.util.concurrent.ThreadLocalRandom", "seeder", seeds, failures);
    reseedThreadLocalRandoms(seeds, failures);
    // The jdk.random generators (RandomGenerator.of(...), getDefault()) each seed from a static
    // defaultGen of their class.
    for (String name : new String[] {"L32X64MixRandom", "L64X128MixRandom", "L64X128StarStarRandom", "L64X256MixRandom", "L64X1024MixRandom", "L128X128MixRandom", "L128X256MixRandom", "L128X1024MixRandom", "Xoroshiro128PlusPlus", "Xoshiro256PlusPlus"}) {
      setAtomicLong("jdk.random." + name, "defaultGen", seeds, failures);
    }
    return isMathReseeded;
  }

  /** Every live thread that has used ThreadLocalRandom gets a seed of its own. */
  private static void reseedThreadLocalRandoms(Seeds seeds, List<String> failures) {
    try {
      Field seed = Thread.class.getDeclaredField("threadLocalRandomSeed");
      Field probe = Thread.class.getDeclaredField("threadLocalRandomProbe");
      seed.setAccessible(true);
      probe.setAccessible(true);
      for (Thread thread : Thread.getAllStackTraces().keySet()) {
        if (probe.getInt(thread) != 0) seed.setLong(thread, seeds.next());
      }
    } catch (ReflectiveOperationException | RuntimeException error) {
      failures.add("could not reseed ThreadLocalRandom's per-thread seeds: " + error);
    }
  }

  private static boolean reseedRandom(String className, String fieldName, Seeds seeds, List<String> failures) {
    Object value = readStatic(className, fieldName, failures);
    if (value instanceof Random) {
      ((Random) value).setSeed(seeds.next());
      return true;
    }
    return false;
  }

  private static void setAtomicLong(String className, String fieldName, Seeds seeds, List<String> failures) {
    Object value = readStatic(className, fieldName, failures);
    if (value instanceof AtomicLong) ((AtomicLong) value).set(seeds.next());
  }

  /** A static field's value; null when the class is not loaded or the field is absent (another JDK). */
  private static Object readStatic(String className, String fieldName, List<String> failures) {
    Class<?> type;
    try {
      type = Class.forName(className, false, ClassLoader.getSystemClassLoader());
    } catch (ClassNotFoundException | LinkageError absent) {
      return null;
    }
    try {
      Field field = type.getDeclaredField(fieldName);
      if (!Modifier.isStatic(field.getModifiers())) return null;
      field.setAccessible(true);
      return field.get(null);
    } catch (NoSuchFieldException absent) {
      return null;
    } catch (ReflectiveOperationException | RuntimeException error) {
      failures.add("could not reseed " + className + "." + fieldName + ": " + error);
      return null;
    }
  }

  /** Seeds from the kernel, never from a generator that came out of the snapshot. */
  private static final class Seeds {
    private final ByteBuffer bytes = ByteBuffer.allocate(8 * 64);

    Seeds() throws IOException {
      try (InputStream urandom = new FileInputStream("/dev/urandom")) {
        int filled = 0;
        while (filled < bytes.capacity()) {
          int read = urandom.read(bytes.array(), filled, bytes.capacity() - filled);
          if (read < 0) throw new IOException("end of /dev/urandom");
          filled += read;
        }
      }
    }

    long next() {
      if (bytes.remaining() < 8) bytes.rewind();
      return bytes.getLong();
    }
  }

  private static long pid() {
    return ProcessHandle.current().pid();
  }

  /** One write of less than PIPE_BUF: atomic among every process that shares the pipe. */
  private static synchronized void send(String line) {
    try {
      up.write((line + "\n").getBytes(StandardCharsets.UTF_8));
    } catch (IOException gone) {
      // warmstart is gone (--detach): nobody is listening.
    }
  }

  private static boolean isPipe(String fd) {
    try {
      return Files.readSymbolicLink(Path.of("/proc/self/fd/" + fd)).toString().startsWith("pipe:");
    } catch (IOException | RuntimeException closed) {
      return false;
    }
  }

  private static String toJson(List<String> texts) {
    List<String> quoted = new ArrayList<>();
    for (String text : texts) quoted.add(quote(text));
    return "[" + String.join(",", quoted) + "]";
  }

  private static String quote(String text) {
    StringBuilder json = new StringBuilder("\"");
    for (char c : text.toCharArray()) {
      if (c == '"' || c == '\\') json.append('\\').append(c);
      else if (c < 0x20) json.append(String.format("\\u%04x", (int) c));
      else json.append(c);
    }
    return json.append('"').toString();
  }
}
