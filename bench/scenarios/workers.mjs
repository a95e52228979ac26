// WORKERS=2 against one node ("every core of one machine"): the burst fan-out (fanout.mjs'
// closed loop, 1 -> N) and the HTTP publish rate (http-publish.mjs' load, open, no subscribers), each
// measured on `ours` (one process) and on `ours-workers` (a primary and two workers sharing the
// primary's in-memory broker over IPC), back to back. The single node is the baseline: the target is
// >= 1.7x its deliveries per second and its requests per second, everything delivered once.
//
// Throughput per wall-second is what a second core buys; CPU per delivery (or per request) shows
// what the IPC costs. Server CPU is the whole process tree (bench/lib/proc.mjs). On a 2-core machine
// the load generator (client processes, wrk) needs CPU of the same two cores: the figure measured
// here is a floor for what the workers do on a machine where the load comes from elsewhere.
// The fan-out rows measure that: the client processes' CPU per delivery over the same window
// (fanout.mjs), and the bound it sets on the 2 workers' speed-up (twoWorkerBound below).
import { round } from '../lib/measure.mjs'
import { measure as fanoutMeasure } from './fanout.mjs'
import { haveWrk, measure as httpMeasure } from './http-publish.mjs'

/**
 * The most two workers can reach of one node's deliveries per second when the client processes
 * share the machine's 2 cores, from the single-process round: s = server CPU per delivery, c =
 * client CPU per delivery. One node is one thread (its event loop): it delivers at most 1/s per
 * second on its core, the clients running on the other core (as long as c <= s they fit there). Two
 * workers and the clients share both cores: each delivery costs s + c of the 2 CPU-seconds per
 * second, so at most 2/(s + c) per second. Ratio: (2/(s + c)) / (1/s) = 2s/(s + c), below 2 as soon
 * as the clients cost anything. It is an upper bound: the IPC the workers add raises s for them, and
 * the benchmark process itself (the publisher, the clients' IPC to it) also runs on these cores.
 * It assumes the single node keeps its core busy (server CPU ~ wall time), as at 10,000 subscribers
 * (~86%, BENCHMARKS.md); a smaller closed loop (--quick: 1000) leaves it idle between publications,
 * runs below 1/s, and two workers may then exceed this figure. The log says how busy it was.
 */
function twoWorkerBound ({ cpuMicrosPerDelivery: s, clientCpuMicrosPerDelivery: c }) {
  return 2 * s / (s + c)
}

export async function workers ({ connections, duration }, log) {
  const fanoutOptions = { subscribers: connections, duration }
  const single = await fanoutMeasure('ours', { ...fanoutOptions, label: 'workers-1' }, log)
  log(`  bound for 2 workers 2s/(s+c) = ${round(twoWorkerBound(single), 2)} (s ${round(single.cpuMicrosPerDelivery, 2)} µs, c ${round(single.clientCpuMicrosPerDelivery, 2)} µs); ` +
    `it assumes the single process's core is busy: it was ${round(100 * single.cpuSeconds / single.wallSeconds)}%`)
  const two = await fanoutMeasure('ours-workers', { ...fanoutOptions, label: 'workers-2' }, log)
  const wrk = await haveWrk()
  const httpSingle = await httpMeasure('ours', { duration, wrk, tag: 'http-publish-workers-1' }, log)
  const httpTwo = await httpMeasure('ours-workers', { duration, wrk, tag: 'http-publish-workers-2' }, log)
  const baselineLabel = 'ours, 1 process'
  const fanout = `fan-out 1 -> ${connections}, WORKERS=2`
  const http = 'HTTP publish, no subscribers, WORKERS=2'
  const complete = result => result.deliveries === result.expected ? 1 : round(result.deliveries / result.expected, 4)
  return {
    rows: [
      { scenario: fanout, metric: 'deliveries per second (higher is better)', ours: round(two.deliveriesPerSecond), baseline: round(single.deliveriesPerSecond), baselineLabel, better: 'higher' },
      { scenario: fanout, metric: 'delivered / expected (1 = everything once)', ours: complete(two), baseline: complete(single), baselineLabel, better: 'higher' },
      { scenario: fanout, metric: 'server CPU µs per delivery, all processes', ours: round(two.cpuMicrosPerDelivery, 2), baseline: round(single.cpuMicrosPerDelivery, 2), baselineLabel, better: 'lower' },
      { scenario: fanout, metric: 'client CPU µs per delivery', ours: round(two.clientCpuMicrosPerDelivery, 2), baseline: round(single.clientCpuMicrosPerDelivery, 2), baselineLabel, better: 'lower' },
      // Derived from the 1-process round alone: compare with the deliveries-per-second ratio above.
      { scenario: fanout, metric: 'bound for 2 workers, 2s/(s+c)', ours: round(twoWorkerBound(single), 2), baseline: null, baselineLabel: 'none', better: 'higher' },
      { scenario: fanout, metric: 'publish-to-delivery p99 (ms)', ours: round(two.p99, 1), baseline: round(single.p99, 1), baselineLabel, better: 'lower' },
      { scenario: http, metric: 'requests per second (higher is better)', ours: round(httpTwo.requestsPerSecond), baseline: round(httpSingle.requestsPerSecond), baselineLabel, better: 'higher' },
      { scenario: http, metric: 'server CPU per request (us), all processes', ours: round(httpTwo.cpuMicrosPerRequest, 1), baseline: round(httpSingle.cpuMicrosPerRequest, 1), baselineLabel, better: 'lower' },
      { scenario: http, metric: 'latency p99 (ms)', ours: round(httpTwo.p99, 2), baseline: round(httpSingle.p99, 2), baselineLabel, better: 'lower' }
    ],
    detail: { single, two, httpSingle, httpTwo }
  }
}
