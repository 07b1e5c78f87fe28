/*
 * Which of a snapshot's discovered inputs no longer stat as recorded: the one stat per input
 * that every warm launch makes, in one call from Node (through koffi) instead of one
 * fs.statSync per file. A warm launch is a fresh process, where each statSync also pays for
 * JavaScript that has not been compiled yet: 2,000 of them took 25-35 ms there, against ~4 ms
 * for the stat system calls themselves. (Two threads gained nothing on the 2-core VMs this was
 * measured on: parallel stat calls did not scale there, though getppid did.) Built by
 * scripts/build-native.sh; src/inputs/native-stamps.ts loads it, and without it warmstart
 * stats each input from JavaScript.
 *
 * The stamps are the manifest's lines in binary, as src/inputs/native-stamps.ts encodes them
 * (parsing the lines' numbers with strtod was an eighth of the call), in this machine's byte
 * order: the 8 bytes "WSSTAMP2" then the double 1.0 (which a machine of the other byte order
 * reads as another number), then for every input the five doubles Node's stat gave at
 * recording (dev, ino, size, mtimeMs, ctimeMs), then every input's kind (f file, d directory,
 * a must stay absent; any other byte is a line that could not be encoded), then every path
 * followed by a NUL. Comparing doubles with doubles decides exactly as the JavaScript check
 * does: Node's millisecond times are computed here as Node computes them (sec * 1e3 + nsec /
 * 1e6, in doubles). Only the verdict "unchanged" is final: every other input (a mismatch, any
 * stat error, a kind this code does not know) is reported as moved, and the caller decides
 * about it exactly as it does without this library.
 *
 * Each input is stat'ed relative to its directory, opened once for the run of lines in it (the
 * lines are sorted by path): most of a stat's cost here is the walk of its path, one lookup per
 * component, and an app's modules share long directory prefixes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static double node_ms(struct timespec time) {
  return (double)time.tv_sec * 1000.0 + (double)time.tv_nsec / 1000000.0;
}

/* The directory of the lines being checked, held open while consecutive lines share it. */
struct directory {
  char path[PATH_MAX];
  size_t length; /* SIZE_MAX: none yet */
  int fd;        /* -1: could not be opened (each input is then stat'ed by its whole path) */
};

static void directory_close(struct directory *directory) {
  if (directory->fd >= 0) close(directory->fd);
  directory->fd = -1;
  directory->length = SIZE_MAX;
}

/*
 * stat(2) of the NUL-terminated absolute `path`, through the directory it is in when that can
 * be held open. The same answer as stat(path): an open that fails (a directory gone, not a
 * directory, not searchable) leaves the whole path to stat(2), which fails the same way.
 */
static int stat_in_directory(struct directory *directory, const char *path, struct stat *st) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL || slash == path || slash[1] == '\0') return stat(path, st);
  size_t length = (size_t)(slash - path);
  if (length >= sizeof directory->path) return stat(path, st);
  if (length != directory->length || memcmp(directory->path, path, length) != 0) {
    directory_close(directory);
    memcpy(directory->path, path, length);
    directory->path[length] = '\0';
    directory->length = length;
    directory->fd = open(directory->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  }
  return directory->fd < 0 ? stat(path, st) : fstatat(directory->fd, slash + 1, st, 0);
}

#define HEADER_SIZE 16
#define NUMBERS_PER_INPUT 5

static int is_unchanged(struct directory *directory, char kind, const double stamp[NUMBERS_PER_INPUT],
                        const char *path) {
  struct stat st;
  int failed = stat_in_directory(directory, path, &st) != 0;
  if (kind == 'a') return failed && errno == ENOENT;
  if (failed || (kind != 'f' && kind != 'd')) return 0;
  return (double)st.st_ino == stamp[1] && node_ms(st.st_mtim) == stamp[3] &&
         node_ms(st.st_ctim) == stamp[4] && (double)st.st_size == stamp[2] && (double)st.st_dev == stamp[0];
}

/*
 * `stamps` holds `length` bytes: the header and the columns of `count` inputs. Writes the
 * indices of the moved inputs to `moved` (room for `count`) and returns how many there are, or
 * -1 when the bytes are not exactly that (they were not written for this manifest, or on this
 * machine): nothing is known for certain.
 */
int32_t warmstart_moved_inputs_v2(const uint8_t *stamps, size_t length, int32_t count, int32_t *moved) {
  static const char magic[8] = {'W', 'S', 'S', 'T', 'A', 'M', 'P', '2'};
  double one;
  size_t numbers_size = (size_t)count * NUMBERS_PER_INPUT * sizeof(double);
  if (count < 0 || length < HEADER_SIZE + numbers_size + (size_t)count ||
      memcmp(stamps, magic, sizeof magic) != 0)
    return -1;
  memcpy(&one, stamps + sizeof magic, sizeof one);
  if (one != 1.0) return -1;
  const uint8_t *numbers = stamps + HEADER_SIZE;
  const uint8_t *kinds = numbers + numbers_size;
  const char *path = (const char *)kinds + count;
  const char *stamps_end = (const char *)stamps + length;
  int32_t index = 0;
  int32_t moved_count = 0;
  struct directory directory = {.length = SIZE_MAX, .fd = -1};
  for (; index < count && path < stamps_end; index++) {
    const char *path_end = memchr(path, '\0', (size_t)(stamps_end - path));
    if (path_end == NULL) break;
    double stamp[NUMBERS_PER_INPUT];
    memcpy(stamp, numbers + (size_t)index * sizeof stamp, sizeof stamp);
    if (!is_unchanged(&directory, (char)kinds[index], stamp, path)) moved[moved_count++] = index;
    path = path_end + 1;
  }
  directory_close(&directory);
  return index == count && path == stamps_end ? moved_count : -1;
}

/*
 * The same, for the stamps in the file at `path` (an entry's stamps file), mapped rather than
 * read: reading it into Node's heap cost 1.5-2 ms of page faults in a fresh process. Returns -2
 * when the file cannot be opened, is a symlink or not a regular file, is not the caller's, or
 * others may read or write it.
 */
int32_t warmstart_moved_inputs_in_file_v2(const char *path, int32_t count, int32_t *moved) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -2;
  struct stat st;
  int32_t result = -2;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
      (st.st_mode & 077) == 0) {
    if (st.st_size == 0) {
      result = -1;
    } else {
      /* MAP_POPULATE: one call maps every page, instead of a fault per page. */
      void *stamps = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      if (stamps != MAP_FAILED) {
        result = warmstart_moved_inputs_v2(stamps, (size_t)st.st_size, count, moved);
        munmap(stamps, (size_t)st.st_size);
      }
    }
  }
  close(fd);
  return result;
}
