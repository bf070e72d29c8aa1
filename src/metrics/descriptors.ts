// The process's open file descriptors, counted without listing them on the event loop.
import { readdir, stat } from 'node:fs/promises';

/**
 * Linux 6.2 and later give the number of open descriptors as the size of /proc/self/fd, in
 * one call whatever their number. Older kernels give 0, and the folder is listed instead, on
 * libuv's thread pool: only the names come back to the event loop (the listing holds a
 * descriptor of its own while it reads, left out of the count).
 * prom-client's collector lists it synchronously: with thousands of connections open, each
 * scrape held up every request for milliseconds (docs/decisions/0002-batched-metric-children.md).
 */
export async function openDescriptors(folder = '/proc/self/fd'): Promise<number> {
  const { size } = await stat(folder);
  if (size > 0) return size;
  return (await readdir(folder)).length - 1;
}
