// Progress on stderr for long work, only when stderr is a terminal (logs and pipes stay clean).
import cliProgress from 'cli-progress'

export interface Progress {
  update(phase: string, done: number, total: number): void
  stop(): void
}

const silent: Progress = {update() {}, stop() {}}

export function progressBar(enabled = process.stderr.isTTY === true): Progress {
  if (!enabled) return silent
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: '{phase} [{bar}] {value}/{total}',
      hideCursor: true,
      clearOnComplete: true,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  )
  let current = ''
  return {
    update(phase, done, total) {
      if (phase !== current) {
        if (current) bar.stop()
        bar.start(Math.max(total, done), done, {phase})
        current = phase
      } else {
        if (total > 0) bar.setTotal(total)
        else if (done > bar.getTotal()) bar.setTotal(done)
        bar.update(done, {phase})
      }
    },
    stop() {
      if (current) bar.stop()
    },
  }
}
