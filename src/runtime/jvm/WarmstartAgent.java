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
  private static final int PROTOCOL_VERSION = 2;
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
    Targets targets = null;
    try {
      openToAgent();
      List<String> failures = new ArrayList<>();
      targets = findTargets(failures);
      // Run once before the dump, so that a restored copy does not run this code first.
      describeReseed(true, List.of("\u0000"), 0.5).getBytes(StandardCharsets.UTF_8);
      send("checkpoint-ready " + pid());
      int read = down.read();
      boolean isEarly = read == 'S';
      String verdict = read == 'R' || isEarly ? "restored" : read == 'D' ? "saved" : "cancelled";
      long startedNs = System.nanoTime();
      boolean isReseeded = !verdict.equals("restored") || reseed(targets, failures);
      double reseedMs = (System.nanoTime() - startedNs) / 1e6;
      String report = describeReseed(isReseeded, failures, reseedMs);
      if (isEarly) {
        // A copy that waits (serve's spare): reseeded now, told again when it is wanted.
        send("reseeded " + pid() + " " + report);
        if (down.read() != 'R') verdict = "cancelled";
      }
      send("resumed " + pid() + " " + verdict + " " + report);
    } catch (IOException | RuntimeException error) {
      send("checkpoint-failed " + pid() + " " + quote("warmstart's Java agent: " + error));
    } finally {
      if (targets != null && targets.urandom != null) {
        try {
          targets.urandom.close();
        } catch (IOException ignored) {
          // Closed or not, it is not used again.
        }
      }
      isBusy.set(false);
    }
  }

  private static String describeReseed(boolean isReseeded, List<String> failures, double reseedMs) {
    return "{\"isReseeded\":" + isReseeded + ",\"failures\":" + toJson(failures) + ",\"reseedMs\":" + reseedMs + "}";
  }

  /** What the reseed sets, found before the snapshot: after a restore only values change. */
  private static final class Targets {
    final List<Random> randoms = new ArrayList<>();
    final List<AtomicLong> defaultSeeds = new ArrayList<>();
    Field threadSeed;
    Field threadProbe;
    boolean hasMathRandom;
    /** Opened before the dump: in a restored copy, a read is all the reseed's entropy costs
     * (opening it there took ~10 ms of first-run code). Closed once the verdict is in. */
    InputStream urandom;
  }

  private static Targets findTargets(List<String> failures) {
    Targets targets = new Targets();
    Object math = readStatic("java.lang.Math$RandomNumberGeneratorHolder", "randomNumberGenerator", failures);
    if (math instanceof Random) {
      targets.randoms.add((Random) math);
      targets.hasMathRandom = true;
    }
    for (String[] field : new String[][] {
      {"java.lang.StrictMath$RandomNumberGeneratorHolder", "randomNumberGenerator"},
      {"java.util.Collections", "r"},
    }) {
      Object random = readStatic(field[0], field[1], failures);
      if (random instanceof Random) targets.randoms.add((Random) random);
    }
    // The default seeds of new generators; the jdk.random ones (RandomGenerator.of(...),
    // getDefault()) each have a static defaultGen of their class.
    List<String[]> seeds = new ArrayList<>(List.of(
        new String[] {"java.util.Random", "seedUniquifier"},
        new String[] {"java.util.SplittableRandom", "defaultGen"},
        new String[] {"java.util.concurrent.ThreadLocalRandom", "seeder"}));
    for (String name : new String[] {"L32X64MixRandom", "L64X128MixRandom", "L64X128StarStarRandom", "L64X256MixRandom", "L64X1024MixRandom", "L128X128MixRandom", "L128X256MixRandom", "L128X1024MixRandom", "Xoroshiro128PlusPlus", "Xoshiro256PlusPlus"}) {
      seeds.add(new String[] {"jdk.random." + name, "defaultGen"});
    }
    for (String[] field : seeds) {
      Object seed = readStatic(field[0], field[1], failures);
      if (seed instanceof AtomicLong) targets.defaultSeeds.add((AtomicLong) seed);
    }
    try {
      targets.threadSeed = Thread.class.getDeclaredField("threadLocalRandomSeed");
      targets.threadProbe = Thread.class.getDeclaredField("threadLocalRandomProbe");
      targets.threadSeed.setAccessible(true);
      targets.threadProbe.setAccessible(true);
      // Their accessors are made on first use: here, not in a restored copy (where that took
      // milliseconds). This thread's own seed is written back as it is.
      Thread self = Thread.currentThread();
      targets.threadProbe.getInt(self);
      targets.threadSeed.setLong(self, targets.threadSeed.getLong(self));
    } catch (ReflectiveOperationException | RuntimeException error) {
      failures.add("cannot reach ThreadLocalRandom's per-thread seeds: " + error);
    }
    try {
      targets.urandom = new FileInputStream("/dev/urandom");
      // Read once here: the first read links its native code, which a restored copy then skips.
      new Seeds(targets.urandom);
    } catch (IOException error) {
      // The reseed says so: no seeds, no reseed.
    }
    return targets;
  }

  /** Returns whether Math.random's generator (the one every JVM has) was reseeded. */
  static boolean reseed(Targets targets, List<String> failures) {
    Seeds seeds;
    try {
      if (targets.urandom == null) throw new IOException("it could not be opened before the checkpoint");
      seeds = new Seeds(targets.urandom);
    } catch (IOException error) {
      failures.add("cannot read /dev/urandom: " + error);
      return false;
    }
    for (Random random : targets.randoms) random.setSeed(seeds.next());
    for (AtomicLong seed : targets.defaultSeeds) seed.set(seeds.next());
    if (targets.threadSeed != null && targets.threadProbe != null) {
      // Every live thread that has used ThreadLocalRandom gets a seed of its own.
      try {
        for (Thread thread : liveThreads()) {
          if (thread == null) continue;
          if (targets.threadProbe.getInt(thread) != 0) targets.threadSeed.setLong(thread, seeds.next());
        }
      } catch (ReflectiveOperationException | RuntimeException error) {
        failures.add("could not reseed ThreadLocalRandom's per-thread seeds: " + error);
      }
    }
    return targets.hasMathRandom;
  }

  /** Every live platform thread, without the stack traces Thread.getAllStackTraces() takes
   * (3-4 ms in a restored copy, every thread stopped at a safepoint for it). */
  private static Thread[] liveThreads() {
    ThreadGroup root = Thread.currentThread().getThreadGroup();
    while (root.getParent() != null) root = root.getParent();
    Thread[] threads = new Thread[root.activeCount() + 16];
    // A full array may have left some out: larger until it is not.
    while (root.enumerate(threads, true) == threads.length) threads = new Thread[threads.length * 2];
    return threads;
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

    Seeds(InputStream urandom) throws IOException {
      int filled = 0;
      while (filled < bytes.capacity()) {
        int read = urandom.read(bytes.array(), filled, bytes.capacity() - filled);
        if (read < 0) throw new IOException("end of /dev/urandom");
        filled += read;
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
