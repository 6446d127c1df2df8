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

/** A queue of tasks that may add more tasks (a tree walk), run with at most `limit` in flight. */
export interface TaskQueue {
  /** Adds a task; it starts as soon as fewer than `limit` run. */
  push(task: () => Promise<void>): void
  /** Settles once every task (those added later included) has finished, or on the first failure. */
  readonly done: Promise<void>
}

/**
 * Runs `first` and every task pushed while the queue runs, at most `limit` at once. Tasks are
 * taken last-in first-out, so a tree walk goes depth-first and the backlog stays small. On the
 * first failure no new task starts and `done` rejects with that error.
 */
export function taskQueue(limit: number, first: () => Promise<void>): TaskQueue {
  const stack: (() => Promise<void>)[] = [first]
  const max = Math.max(1, limit)
  let active = 0
  let failed = false
  let settle!: {resolve: () => void; reject: (e: unknown) => void}
  const done = new Promise<void>((resolve, reject) => (settle = {resolve, reject}))
  const pump = (): void => {
    if (failed) return
    while (active < max && stack.length) {
      const task = stack.pop()!
      active++
      task().then(
        () => {
          active--
          pump()
        },
        (err: unknown) => {
          failed = true
          settle.reject(err)
        },
      )
    }
    if (active === 0 && stack.length === 0) settle.resolve()
  }
  queueMicrotask(pump)
  return {push: (t) => stack.push(t), done}
}
