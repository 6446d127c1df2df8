// Bounded concurrency for I/O-bound loops (copies, small reads): Node's file operations run on
// libuv's thread pool, so a handful in flight keeps the disk busy without flooding it.

/**
 * Runs `fn` over `items` with at most `limit` in flight. On the first failure no new item is
 * started, every item already in flight is waited for (so nothing is still writing when the
 * caller cleans up), and that first error is thrown.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0
  let failed = false
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      try {
        await fn(items[next++]!)
      } catch (err) {
        failed = true
        throw err
      }
    }
  }
  const results = await Promise.allSettled(Array.from({length: Math.min(limit, items.length)}, worker))
  const failure = results.find((r) => r.status === 'rejected')
  if (failure) throw (failure as PromiseRejectedResult).reason
}
