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
 * The lines are the manifest's, each followed by a NUL: "<kind> <dev> <ino> <size> <mtimeMs>
 * <ctimeMs> <sha256> <path>", kind f (file), d (directory) or a (must stay absent). Numbers
 * are JavaScript's shortest round-trip form of Node's stat doubles, so strtod gives back the
 * exact double, and Node's millisecond times are computed here as Node computes them
 * (sec * 1e3 + nsec / 1e6, in doubles). Only the verdict "unchanged" is final: every other
 * line (a mismatch, any stat error, a line this code cannot parse) is reported as moved, and
 * the caller decides about it exactly as it does without this library.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_number(const char **cursor, const char *end, double *value) {
  char *after;
  if (*cursor >= end) return 0;
  *value = strtod(*cursor, &after);
  if (after == *cursor || after >= end || *after != ' ') return 0;
  *cursor = after + 1;
  return 1;
}

static double node_ms(struct timespec time) {
  return (double)time.tv_sec * 1000.0 + (double)time.tv_nsec / 1000000.0;
}

static int is_unchanged(const char *line, const char *end) {
  double dev, ino, size, mtime_ms, ctime_ms;
  const char *cursor = line + 2;
  if (end - line < 3 || line[1] != ' ') return 0;
  if (!read_number(&cursor, end, &dev) || !read_number(&cursor, end, &ino) ||
      !read_number(&cursor, end, &size) || !read_number(&cursor, end, &mtime_ms) ||
      !read_number(&cursor, end, &ctime_ms))
    return 0;
  const char *space = memchr(cursor, ' ', (size_t)(end - cursor)); /* after the sha256 */
  if (space == NULL || space + 1 >= end) return 0;
  struct stat st;
  int failed = stat(space + 1, &st) != 0;
  if (line[0] == 'a') return failed && errno == ENOENT;
  if (failed || (line[0] != 'f' && line[0] != 'd')) return 0;
  return (double)st.st_ino == ino && node_ms(st.st_mtim) == mtime_ms &&
         node_ms(st.st_ctim) == ctime_ms && (double)st.st_size == size && (double)st.st_dev == dev;
}

/*
 * `text` holds `length` bytes: `line_count` lines, each followed by a NUL. Writes the indices
 * of the moved lines to `moved` (room for `line_count`) and returns how many there are, or -1
 * when the text does not hold exactly `line_count` lines (it was not written for this
 * manifest: nothing is known for certain).
 */
int32_t warmstart_moved_inputs_v1(const char *text, size_t length, int32_t line_count, int32_t *moved) {
  const char *line = text;
  const char *text_end = text + length;
  int32_t index = 0;
  int32_t count = 0;
  while (line < text_end && index < line_count) {
    const char *end = memchr(line, '\0', (size_t)(text_end - line));
    if (end == NULL) return -1;
    if (!is_unchanged(line, end)) moved[count++] = index;
    index++;
    line = end + 1;
  }
  return index == line_count && line == text_end ? count : -1;
}

/*
 * The same, for the lines in the file at `path` (an entry's stamps file), mapped rather than
 * read: reading it into Node's heap cost 1.5-2 ms of page faults in a fresh process. Returns -2
 * when the file cannot be opened, is a symlink or not a regular file, is not the caller's, or
 * others may read or write it.
 */
int32_t warmstart_moved_inputs_in_file_v1(const char *path, int32_t line_count, int32_t *moved) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -2;
  struct stat st;
  int32_t result = -2;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
      (st.st_mode & 077) == 0) {
    if (st.st_size == 0) {
      result = line_count == 0 ? 0 : -1;
    } else {
      /* MAP_POPULATE: one call maps every page, instead of a fault per page. */
      void *text = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      if (text != MAP_FAILED) {
        result = warmstart_moved_inputs_v1(text, (size_t)st.st_size, line_count, moved);
        munmap(text, (size_t)st.st_size);
      }
    }
  }
  close(fd);
  return result;
}
