import { writeFileSync } from "node:fs";
import { generateAgeIdentity } from "../cache/archive-stages.js";
import { generateSigningKey } from "../cache/snapshot-signature.js";
import { WarmstartError } from "../errors.js";
import { parseCommandArgs, rejectPositionals } from "./command-args.js";

const USAGE = `Usage: warmstart keygen [-o <file>] [--age]

Writes a new Ed25519 signing key (PEM, mode 0600) for --sign-key and prints its public key,
the "ed25519:..." text that --trust and WARMSTART_TRUSTED_KEYS take. With --age, writes an
age identity for --identity instead and prints its recipient ("age1...") for --encrypt.`;

export async function runKeygenCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    args,
    {
      output: { type: "string", short: "o" },
      age: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    USAGE,
  );
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  rejectPositionals(positionals, USAGE);
  const { secret, shared } = values.age
    ? await generateAgeIdentity().then(({ identity, recipient }) => ({
        secret: `${identity}\n`,
        shared: recipient,
      }))
    : (({ privateKeyPem, publicKey }) => ({ secret: privateKeyPem, shared: publicKey }))(
        generateSigningKey(),
      );
  if (values.output === undefined) {
    if (process.stdout.isTTY) {
      throw new WarmstartError("invalid-option", "Refusing to print a private key to a terminal.", {
        hint: "give -o <file>",
      });
    }
    process.stdout.write(secret);
  } else {
    try {
      writeFileSync(values.output, secret, { mode: 0o600, flag: "wx" });
    } catch (error) {
      throw new WarmstartError(
        "invalid-option",
        `Cannot write ${values.output}: ${(error as Error).message}.`,
        {
          hint: "the file must not exist yet",
        },
      );
    }
  }
  process.stderr.write(`${values.age ? "recipient" : "public key"}: ${shared}\n`);
  return 0;
}
