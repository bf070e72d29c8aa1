// Reading flat header lines (name, value, name, value, …), the form upstreamHeaders() returns.

/** The lines as [name, value] pairs, in order. */
export function headerPairs(lines: readonly string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i < lines.length; i += 2) pairs.push([lines[i]!, lines[i + 1]!]);
  return pairs;
}

/** The values of one header, in order; names compare exactly (upstreamHeaders() lower-cases them). */
export function headerValues(lines: readonly string[], name: string): string[] {
  return headerPairs(lines)
    .filter(([n]) => n === name)
    .map(([, v]) => v);
}
