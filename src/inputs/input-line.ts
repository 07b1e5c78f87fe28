/**
 * A discovered input as the manifest records it, one line each:
 * "<kind> <dev> <ino> <size> <mtimeMs> <ctimeMs> <sha256> <path>", kind f (file), d
 * (directory) or a (must stay absent); the numbers as JavaScript prints Node's stat doubles;
 * the path last, so that it may hold spaces.
 */
export const FIELDS_BEFORE_PATH = 7;

export function pathStart(line: string): number {
  let index = -1;
  for (let field = 0; field < FIELDS_BEFORE_PATH; field++) index = line.indexOf(" ", index + 1);
  return index + 1;
}

export function decodePath(line: string): string {
  return line.slice(pathStart(line));
}
