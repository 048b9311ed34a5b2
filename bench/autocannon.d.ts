// The slice of autocannon 9's programmatic API the harness uses (the package ships no types).
declare module 'autocannon' {
  export interface Options {
    url: string
    method?: string
    headers?: Record<string, string>
    body?: string | Buffer
    connections?: number
    duration?: number
    timeout?: number
    pipelining?: number
    overallRate?: number
  }
  export interface Histogram {
    average: number
    mean: number
    stddev: number
    min: number
    max: number
    p50: number
    p90: number
    p99: number
    total: number
  }
  export interface Result {
    duration: number
    errors: number
    timeouts: number
    non2xx: number
    resets: number
    mismatches: number
    latency: Histogram
    requests: Histogram & { sent: number }
    statusCodeStats: Record<string, { count: number }>
  }
  export interface Instance {
    stop(): void
    /** One answer: its status, bytes and the time since the request was sent (ms). */
    on(
      event: 'response',
      listener: (client: unknown, statusCode: number, resBytes: number, responseTimeMs: number) => void,
    ): Instance
  }
  function autocannon(options: Options, done: (err: Error | null, result: Result) => void): Instance
  export default autocannon
}
