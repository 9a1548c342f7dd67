/** The `brigade` command line: parses flags from the config schema and hands over to a tier. */
export async function main(argv: string[]): Promise<number> {
  process.stderr.write(`brigade: not yet implemented (${argv.join(" ")})\n`);
  return 1;
}
