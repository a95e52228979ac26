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
// The rows measure that: the client processes' CPU per delivery over the same window (fanout.mjs),
// how many of the machine's cores were busy in each run (bench/lib/proc.mjs machineBusy), and the
// bound that sets on what two workers can reach (speedUpBound below).
import { round } from '../lib/measure.mjs'
import { measure as fanoutMeasure } from './fanout.mjs'
import { haveWrk, measure as httpMeasure } from './http-publish.mjs'

/**
 * The most any number of server processes can reach of one process' rate on this machine, from the
 * single-process run: cores / cores busy. The server, the load generator (client processes or wrk)
 * and this harness all run on the same cores, and all their work grows with the rate; one process
 * that already kept 1.75 of 2 cores busy leaves room for at most 2 / 1.75 = 1.14x, whatever a second
 * process could do on a machine of its own. An upper bound: the workers' IPC adds work per delivery.
 */
function speedUpBound ({ machineBusyCores, machineCores }) {
  return machineCores / machineBusyCores
}

export async function workers ({ connections, duration }, log) {
  const fanoutOptions = { subscribers: connections, duration }
  const single = await fanoutMeasure('ours', { ...fanoutOptions, label: 'workers-1' }, log)
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
      { scenario: fanout, metric: 'machine cores busy, all processes (of 2)', ours: round(two.machineBusyCores, 2), baseline: round(single.machineBusyCores, 2), baselineLabel, better: 'higher' },
      // From the 1-process run alone: compare with the deliveries-per-second ratio above.
      { scenario: fanout, metric: 'most any server can reach on these cores, x 1 process (cores / cores busy)', ours: round(speedUpBound(single), 2), baseline: null, baselineLabel: 'none', better: 'higher' },
      { scenario: fanout, metric: 'publish-to-delivery p99 (ms)', ours: round(two.p99, 1), baseline: round(single.p99, 1), baselineLabel, better: 'lower' },
      { scenario: http, metric: 'requests per second (higher is better)', ours: round(httpTwo.requestsPerSecond), baseline: round(httpSingle.requestsPerSecond), baselineLabel, better: 'higher' },
      { scenario: http, metric: 'server CPU per request (us), all processes', ours: round(httpTwo.cpuMicrosPerRequest, 1), baseline: round(httpSingle.cpuMicrosPerRequest, 1), baselineLabel, better: 'lower' },
      { scenario: http, metric: 'latency p99 (ms)', ours: round(httpTwo.p99, 2), baseline: round(httpSingle.p99, 2), baselineLabel, better: 'lower' },
      { scenario: http, metric: 'machine cores busy, all processes (of 2)', ours: round(httpTwo.machineBusyCores, 2), baseline: round(httpSingle.machineBusyCores, 2), baselineLabel, better: 'higher' },
      { scenario: http, metric: 'most any server can reach on these cores, x 1 process (cores / cores busy)', ours: round(speedUpBound(httpSingle), 2), baseline: null, baselineLabel: 'none', better: 'higher' }
    ],
    detail: { single, two, httpSingle, httpTwo }
  }
}
