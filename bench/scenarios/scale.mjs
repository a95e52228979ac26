// 6. Scale: several nodes on one Redis holding N authenticated, subscribed connections in total
// (100,000 on the 2-core machine). Every node is `node dist/src/server.js` with JWT_SECRET
// and API_KEY, under a REDIS_PREFIX of this run (its keys are deleted at the end, SCAN + DEL on that
// prefix only). With --redis-cluster the nodes share a private 3-master Redis Cluster instead
// (REDIS_CLUSTER_NODES, sharded pub/sub), started here on free ports and killed at the end with its
// directory. Client processes hold at most --per-client sockets each (one process may open 20,000
// files), each from its own 127.0.0.x source address (one address has ~28k ephemeral ports), and
// every connection presents its own HS256 token (a distinct `sub`) and subscribes to one topic.
// Then --publications messages go to POST /api/publish (round robin over the nodes, with the API
// key), one at a time: the next once every connection has the previous one and at least --interval
// ms later. Measured: connect rate (overall and per node), RSS per connection per node, publish-to-
// delivery p50/p99 over every delivery of every client process, losses (should be 0), and the CPU
// each side spends per delivery (server nodes, client processes, Redis).
//
// Not run by default (`--only scale`): the full run takes the whole machine for ~10 minutes.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { ClientPool, sumCounts } from '../lib/clients.mjs'
import { Histogram } from '../lib/histogram.mjs'
import { postJson } from '../lib/http.mjs'
import { round, settledRss } from '../lib/measure.mjs'
import { atStop, cpuSeconds, cpuTimes } from '../lib/proc.mjs'
import { profiled } from '../lib/profiler.mjs'
import { redisCluster } from '../lib/redis-cluster.mjs'
import { REDIS_URL, deleteKeys, redisCpuSeconds, redisInfo } from '../lib/redis-keys.mjs'
import { OURS_ENV, start } from '../lib/targets.mjs'

const TOPIC = 'public.bench.scale'
const WARMUP_PUBLICATIONS = 2
/** Per node, opened (with a token, subscribed) and closed before measuring: compiled code is not per connection. */
const WARMUP_CONNECTIONS = 200
/**
 * A publication that has not reached everyone by then (a dropped connection never will) counts as
 * timed out: 5 times the slowest so far, at least 10 s and 0.3 ms per connection, at most 60 s.
 */
const DELIVERY_TIMEOUT_MS = { min: 10_000, perConnection: 0.3, max: 60_000, slowest: 5 }
/** A client process's own descriptors besides its sockets (IPC, stdio, node's own). */
const CLIENT_FD_HEADROOM = 1000
/** Connection attempts in flight per client process. */
const CONCURRENCY = 64

export const SCALE_DEFAULTS = { connections: 100000, nodes: 8, perClient: 12500, publications: 20, interval: 1000, redisCluster: false, client: 'lean', stagger: false }
/** Masters of the private cluster of --redis-cluster. */
const CLUSTER_MASTERS = 3

/** Upper bound of the whole scenario, for bench/run.mjs's time budget. */
export function scaleBudgetMs ({ connections, publications, interval }) {
  return 5 * 60_000 + connections * 10 + (publications + WARMUP_PUBLICATIONS) * (interval + 15_000 + connections * 0.3)
}

/** The soft open-file limit this process (and so every child) runs under. */
function openFileLimit () {
  const match = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
  return match === null ? Infinity : Number(match[1])
}

/** How many ports one source address can use to connect (net.ipv4.ip_local_port_range). */
function ephemeralPorts () {
  const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
  return high - low + 1
}

/** The MAX_CONNECTIONS a node may run with under the fd limit (src/fd-limit.ts, from the build). */
async function nodeConnectionCap (limit) {
  const { capConnections } = await import(fileURLToPath(new URL('../../dist/src/fd-limit.js', import.meta.url)))
  return capConnections(Number.MAX_SAFE_INTEGER, Number.isFinite(limit) ? limit : undefined).maxConnections
}

function split (total, parts) {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0))
}

/** HEARTBEAT_INTERVAL's default (ms), from the build: the nodes run with it. */
async function heartbeatIntervalMs () {
  const { FIELDS } = await import(fileURLToPath(new URL('../../dist/src/config-fields.js', import.meta.url)))
  return FIELDS.heartbeatInterval.default
}

/** Checks the plan against the machine's limits before anything starts; throws what to change. */
async function plan ({ connections, nodes, perClient }) {
  const fdLimit = openFileLimit()
  const ports = ephemeralPorts()
  const nodeCap = await nodeConnectionCap(fdLimit)
  const perNode = split(connections, nodes)
  if (perNode[0] > nodeCap) {
    throw new Error(`${perNode[0]} connections per node do not fit under the open-file limit ${fdLimit} (a node takes at most ${nodeCap}): ` +
      `use --nodes ${Math.ceil(connections / nodeCap)} or more, or raise ulimit -n`)
  }
  const clientCap = Math.min(fdLimit - CLIENT_FD_HEADROOM, ports)
  if (perClient > clientCap) {
    throw new Error(`--per-client ${perClient} is over what one client process can open (${clientCap}: open-file limit ${fdLimit} minus ${CLIENT_FD_HEADROOM}, ${ports} ephemeral ports per source address)`)
  }
  return { fdLimit, ports, nodeCap, perNode, clientsPerNode: perNode.map(n => Math.max(1, Math.ceil(n / perClient))) }
}

/** GET /api/info with the API key: every live node's connection and subscription counts. */
async function clusterInfo (url, apiKey) {
  const res = await fetch(`${url}/api/info`, { headers: { 'x-api-key': apiKey } })
  if (res.status !== 200) throw new Error(`GET /api/info answered ${res.status}`)
  return await res.json()
}

/**
 * What the nodes share: the Redis at BENCH_REDIS_URL (only the run's own prefix is touched, and
 * deleted at the end), or a private Redis Cluster started here. `env` points a node at it; memory,
 * commands and CPU are summed over its masters; stop() cleans up (idempotent).
 */
async function backend (useCluster, prefix) {
  if (!useCluster) {
    await redisInfo('memory').catch(err => {
      throw new Error(`cannot reach Redis at ${REDIS_URL} (BENCH_REDIS_URL): ${err.message}`)
    })
    const forget = atStop(() => deleteKeys(prefix)) // also on Ctrl-C and at the time budget
    return {
      label: 'one Redis',
      description: `one Redis at ${REDIS_URL.replace(/\/\/[^@]*@/, '//')}, prefix ${prefix}`,
      env: { REDIS_URL },
      urls: [REDIS_URL],
      stop: async log => {
        forget()
        const deleted = await deleteKeys(prefix).catch(err => { log(`  could not delete the keys under ${prefix}: ${err.message}`); return 0 })
        log(`  deleted ${deleted} Redis keys under ${prefix}`)
      }
    }
  }
  // Killed with its directory by stop(), or by stopAll() on a failure, Ctrl-C or the time budget.
  const cluster = await redisCluster(CLUSTER_MASTERS)
  return {
    label: `Redis Cluster, ${CLUSTER_MASTERS} masters`,
    description: `private Redis Cluster, ${CLUSTER_MASTERS} masters (no replicas) on ${cluster.seeds}, sharded pub/sub, prefix ${prefix}`,
    // REDIS_CLUSTER_NODES replaces REDIS_URL (docs/scaling.md, "Redis Cluster"): REDIS_URL stays unset.
    env: { REDIS_CLUSTER_NODES: cluster.seeds },
    urls: cluster.urls,
    stop: async log => {
      await cluster.stop()
      log(`  stopped the Redis Cluster on ${cluster.seeds} and removed ${cluster.dir}`)
    }
  }
}

/** A number of INFO `section` summed over the backend's Redis processes. */
async function backendInfo (redis, section, field) {
  const infos = await Promise.all(redis.urls.map(url => redisInfo(section, url)))
  return infos.reduce((sum, info) => sum + info[field], 0)
}

async function backendCpuSeconds (redis) {
  const each = await Promise.all(redis.urls.map(url => redisCpuSeconds(url)))
  return each.reduce((a, b) => a + b, 0)
}

/** CPU seconds (user, system) of the given processes so far, summed. */
function cpuOf (pids) {
  return pids.map(pid => cpuTimes(pid)).reduce((sum, each) => ({ user: sum.user + each.user, system: sum.system + each.system }), { user: 0, system: 0 })
}

const clientPids = pools => pools.flatMap(pool => pool.workers).map(worker => worker.child.pid)

/** CPU seconds of this process (the harness: publisher, IPC, pools) so far. */
function harnessCpuSeconds () {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1e6
}

/** Node env: the server's defaults, except what the benchmark needs; nothing else is lifted. */
function nodeEnv ({ redisEnv, prefix, secret, apiKey, nodeId, maxConnections }) {
  return {
    // targets.mjs raises every limit for the single-node scenarios; here the defaults stay.
    ...Object.fromEntries(Object.keys(OURS_ENV).map(name => [name, undefined])),
    LOG_LEVEL: 'warn',
    ...redisEnv,
    REDIS_PREFIX: prefix,
    NODE_ID: nodeId,
    JWT_SECRET: secret,
    API_KEY: apiKey,
    // The only limit set: as many connections as the open-file limit allows (20000 - 1000 here);
    // the default (20000) would be lowered to the same with a warning.
    MAX_CONNECTIONS: String(maxConnections),
    // A client process holds thousands of sockets from one 127.0.0.x address, where real clients
    // would come from as many addresses.
    MAX_CONNECTIONS_PER_IP: String(maxConnections)
  }
}

function table (log, header, rows) {
  log(`  | ${header.join(' | ')} |`)
  log(`  |${header.map((_, i) => i === 0 ? '---' : '---:').join('|')}|`)
  for (const row of rows) log(`  | ${row.join(' | ')} |`)
}

const KiB = bytes => round(bytes / 1024, 2)
const MiB = bytes => round(bytes / 2 ** 20, 1)

export async function scale (options, log) {
  const { connections, nodes: nodeCount, perClient, publications, interval, redisCluster: useCluster = false, client = SCALE_DEFAULTS.client } = options
  if (client !== 'lean' && client !== 'ws') throw new Error(`--client is lean or ws, not "${client}"`)
  // The measured connections' client: 'lean' (a minimal websocket client on net.Socket, see
  // bench/client-worker.mjs) or 'ws' (the ws library); both count and time every delivery the same way.
  const wire = { lean: client === 'lean' }
  // --stagger: node i starts i/N of a heartbeat interval after node 1, as after a rolling start, so
  // that the nodes' heartbeats (each pings all its connections at once) do not all fall together.
  const staggerMs = options.stagger ? await heartbeatIntervalMs() / nodeCount : 0
  const layout = await plan({ connections, nodes: nodeCount, perClient })
  const clientProcesses = layout.clientsPerNode.reduce((a, b) => a + b, 0)
  log(`  plan: ${connections} connections on ${nodeCount} nodes (${layout.perNode[0]} each, at most ${layout.nodeCap} per node), ` +
    `${clientProcesses} client processes (one source address each), ` +
    `${publications} publications (+${WARMUP_PUBLICATIONS} warm-up) at least ${interval} ms apart, ${client} client` +
    `${staggerMs > 0 ? `, nodes started ${round(staggerMs)} ms apart` : ''}; ` +
    `ulimit -n ${layout.fdLimit}, ${layout.ports} ephemeral ports per address`)

  const prefix = `rt-bench-scale-${randomBytes(4).toString('hex')}:`
  const secret = randomBytes(32).toString('hex')
  const apiKey = randomBytes(16).toString('hex')
  const redis = await backend(useCluster, prefix)
  log(`  backend: ${redis.description}`)
  const nodes = []
  const pools = []
  try {
    const redisBefore = await backendInfo(redis, 'memory', 'used_memory')
    const startedAt = performance.now()
    const started = await Promise.allSettled(Array.from({ length: nodeCount }, async (_, i) => {
      await sleep(Math.max(0, startedAt + i * staggerMs - performance.now()))
      return await start('ours', { env: nodeEnv({ redisEnv: redis.env, prefix, secret, apiKey, nodeId: `scale-${i + 1}`, maxConnections: layout.nodeCap }) })
    }))
    nodes.push(...started.filter(s => s.status === 'fulfilled').map(s => s.value))
    const notStarted = started.find(s => s.status === 'rejected')
    if (notStarted !== undefined) throw notStarted.reason
    const warmPools = nodes.map((node, i) => new ClientPool({
      url: node.wsUrl, total: WARMUP_CONNECTIONS, perWorker: WARMUP_CONNECTIONS, topic: TOPIC, jwt: { secret, subPrefix: `scale-warm-n${i + 1}-` }, wire
    }))
    pools.push(...warmPools)
    await Promise.all(warmPools.map(pool => pool.start()))
    await Promise.all(warmPools.map(pool => pool.connect()))
    await Promise.all(warmPools.map(pool => pool.close()))
    pools.length = 0
    await sleep(1000)
    const rssStart = await Promise.all(nodes.map(node => settledRss(node.pid, 3)))

    nodes.forEach((node, i) => pools.push(new ClientPool({
      url: node.wsUrl,
      total: layout.perNode[i],
      perWorker: Math.ceil(layout.perNode[i] / layout.clientsPerNode[i]),
      topic: TOPIC,
      jwt: { secret, subPrefix: `scale-n${i + 1}-` },
      concurrency: CONCURRENCY,
      wire
    })))
    await Promise.all(pools.map(pool => pool.start())) // tokens are minted here, before the clock starts
    const addresses = pools.flatMap(pool => pool.workers.map(worker => worker.localAddress))
    log(`  client processes connect from ${addresses[0]} .. ${addresses.at(-1)}`)

    const cpuBefore = nodes.map(node => cpuSeconds(node.pid))
    const redisCpuBefore = await backendCpuSeconds(redis)
    const redisCommandsBefore = await backendInfo(redis, 'stats', 'total_commands_processed')
    const connectStarted = performance.now()
    const connectTimeoutMs = Math.max(300_000, perClient * 50)
    // With --profile, node 1 is profiled over the connect phase and over the measured publications.
    const connected = await profiled(nodes[0], 'scale-connect-node-1', log, () => Promise.all(pools.map(pool => pool.connect(connectTimeoutMs))))
    const connectSeconds = (performance.now() - connectStarted) / 1000
    const connectCpu = nodes.map((node, i) => cpuSeconds(node.pid) - cpuBefore[i])
    const redisConnectCpu = await backendCpuSeconds(redis) - redisCpuBefore
    // On a shared Redis this includes other clients' commands: read it as an upper bound.
    const redisConnectCommands = await backendInfo(redis, 'stats', 'total_commands_processed') - redisCommandsBefore
    const ok = connected.reduce((sum, r) => sum + r.ok, 0)
    const failed = connected.reduce((sum, r) => sum + r.failed, 0)
    const connectErrors = sumCounts(connected.map(r => r.errors))
    log(`  connected ${ok}/${connections} in ${round(connectSeconds, 1)} s: ${round(ok / connectSeconds)}/s` +
      (failed > 0 ? `, ${failed} FAILED: ${JSON.stringify(connectErrors)}` : ''))
    if (ok === 0) throw new Error(`no connection succeeded: ${JSON.stringify(connectErrors)}; node output:\n${nodes[0].output()}`)

    await sleep(2000) // let the heartbeats report the counts and the allocator settle
    const rssConnected = await Promise.all(nodes.map(node => settledRss(node.pid, 3)))
    const redisAfter = await backendInfo(redis, 'memory', 'used_memory')
    const info = await clusterInfo(nodes[0].url, apiKey)
    const serverCounts = Object.fromEntries(info.nodes.map(n => [n.id, n]))

    // Publications, one at a time, round robin over the nodes' HTTP APIs.
    const histogram = new Histogram()
    let seq = 0
    let timeouts = 0
    let slowest = 0
    const roundTrips = []
    /** Epoch ms each measured publication was sent at (beside roundTrips: how long it took to reach everyone). */
    const sentAt = []
    let lastSentAt = 0
    const publishOne = async () => {
      const target = nodes[seq % nodes.length]
      const id = ++seq
      const floor = Math.max(DELIVERY_TIMEOUT_MS.min, DELIVERY_TIMEOUT_MS.perConnection * ok)
      const timeoutMs = Math.min(DELIVERY_TIMEOUT_MS.max, Math.max(floor, DELIVERY_TIMEOUT_MS.slowest * slowest))
      const delivered = Promise.all(pools.map(pool => pool.waitDelivered(id, timeoutMs)))
      const sent = performance.now()
      lastSentAt = performance.timeOrigin + sent
      await postJson(target.url, '/api/publish', { topic: TOPIC, data: { t: performance.timeOrigin + sent, seq: id } }, { 'x-api-key': apiKey })
      const everywhere = (await delivered).every(Boolean)
      const ms = performance.now() - sent
      if (everywhere) slowest = Math.max(slowest, ms)
      else timeouts++
      await sleep(Math.max(0, interval - ms))
      return ms
    }
    for (let i = 0; i < WARMUP_PUBLICATIONS; i++) await publishOne()
    await Promise.all(pools.map(pool => pool.reset()))
    const cpuPublishBefore = nodes.map(node => cpuSeconds(node.pid))
    const clientCpuBefore = cpuOf(clientPids(pools))
    const serverCpuBefore = cpuOf(nodes.map(node => node.pid))
    const harnessCpuBefore = harnessCpuSeconds()
    const redisPublishCpuBefore = await backendCpuSeconds(redis)
    const publishStarted = performance.now()
    await profiled(nodes[0], 'scale-publish-node-1', log, async () => {
      for (let i = 0; i < publications; i++) {
        roundTrips.push(await publishOne())
        sentAt.push(lastSentAt)
        if ((i + 1) % 10 === 0) log(`  ${i + 1}/${publications} publications, last reached everyone in ${round(roundTrips.at(-1))} ms`)
      }
    })
    const publishCpu = nodes.map((node, i) => cpuSeconds(node.pid) - cpuPublishBefore[i])
    const publishWallSeconds = (performance.now() - publishStarted) / 1000
    const clientCpuAfter = cpuOf(clientPids(pools))
    const serverCpuAfter = cpuOf(nodes.map(node => node.pid))
    const clientPublishCpu = clientCpuAfter.user + clientCpuAfter.system - clientCpuBefore.user - clientCpuBefore.system
    const harnessPublishCpu = harnessCpuSeconds() - harnessCpuBefore
    const redisPublishCpu = await backendCpuSeconds(redis) - redisPublishCpuBefore
    await sleep(500) // late deliveries of a timed-out publication still count as received

    // Deliveries and losses over the whole run (warm-up included): each open socket should hold every publication once.
    const reports = await Promise.all(pools.map(pool => pool.report()))
    for (const report of reports) histogram.merge(report.histogram.toJSON())
    const expectedPerSocket = WARMUP_PUBLICATIONS + publications
    let lost = 0
    let duplicated = 0
    let socketsMissing = 0
    for (const [count, sockets] of Object.entries(sumCounts(reports.map(r => r.perSocket)))) {
      const missing = expectedPerSocket - Number(count)
      if (missing > 0) { lost += missing * sockets; socketsMissing += sockets }
      if (missing < 0) duplicated += -missing * sockets
    }
    const closed = sumCounts(reports.map(r => r.closed))
    // The servers' heartbeat pings (every connection of a node at once, every HEARTBEAT_INTERVAL) that
    // the clients received while each measured publication was on its way: the work they compete with.
    const pingSlots = sumCounts(reports.map(r => r.pings))
    const pingsDuring = sentAt.map((at, i) => {
      let count = 0
      for (let slot = Math.floor(at / 100); slot <= Math.floor((at + roundTrips[i]) / 100); slot++) count += pingSlots[slot] ?? 0
      return count
    })
    const pingsTotal = Object.values(pingSlots).reduce((a, b) => a + b, 0)
    // Publications that met no heartbeat: the slowest of them bounds their deliveries' p99 from above.
    const quietRoundTrips = roundTrips.filter((_, i) => pingsDuring[i] === 0)
    const closedCount = Object.values(closed).reduce((a, b) => a + b, 0)
    // Connections that never opened count as lost too: they were asked for and got nothing.
    const lostWithFailed = lost + failed * expectedPerSocket

    const perNode = nodes.map((node, i) => {
      const id = `scale-${i + 1}`
      const c = connected[i]
      return {
        node: id,
        connections: c.ok,
        serverConnections: serverCounts[id]?.connections ?? null,
        serverSubscriptions: serverCounts[id]?.subscriptions ?? null,
        connectSeconds: c.ms / 1000,
        connectPerSecond: c.ok / (c.ms / 1000),
        cpuMicrosPerConnect: connectCpu[i] * 1e6 / c.ok,
        rssStart: rssStart[i],
        rssConnected: rssConnected[i],
        rssPerConnection: (rssConnected[i] - rssStart[i]) / c.ok,
        publishCpuSeconds: publishCpu[i],
        // Over the measured publications (heartbeats of its connections included).
        publishCpuMicrosPerDelivery: publishCpu[i] * 1e6 / (publications * c.ok)
      }
    })
    const measuredDeliveries = publications * ok
    const serverPublishCpu = publishCpu.reduce((a, b) => a + b, 0)
    // Where the 2 cores went over the measured publications, per delivery (µs) and as cores busy.
    const publishCpuSplit = {
      wallSeconds: publishWallSeconds,
      serverMicrosPerDelivery: serverPublishCpu * 1e6 / measuredDeliveries,
      // of which in the kernel (system time: the socket writes and reads, loopback TCP)
      serverSystemMicrosPerDelivery: (serverCpuAfter.system - serverCpuBefore.system) * 1e6 / measuredDeliveries,
      clientMicrosPerDelivery: clientPublishCpu * 1e6 / measuredDeliveries,
      clientSystemMicrosPerDelivery: (clientCpuAfter.system - clientCpuBefore.system) * 1e6 / measuredDeliveries,
      redisMicrosPerDelivery: redisPublishCpu * 1e6 / measuredDeliveries,
      harnessMicrosPerDelivery: harnessPublishCpu * 1e6 / measuredDeliveries,
      serverCores: serverPublishCpu / publishWallSeconds,
      clientCores: clientPublishCpu / publishWallSeconds,
      redisCores: redisPublishCpu / publishWallSeconds,
      harnessCores: harnessPublishCpu / publishWallSeconds
    }
    const result = {
      backend: redis.label,
      client,
      nodesStartedApartMs: staggerMs,
      connections: { requested: connections, ok, failed, errors: connectErrors },
      nodes: nodeCount,
      clientProcesses,
      connectSeconds,
      connectPerSecond: ok / connectSeconds,
      redisCpuMicrosPerConnect: redisConnectCpu * 1e6 / ok,
      redisCommandsPerConnect: redisConnectCommands / ok,
      redisUsedMemoryDelta: redisAfter - redisBefore,
      publications,
      warmupPublications: WARMUP_PUBLICATIONS,
      deliveries: histogram.total,
      expectedDeliveries: publications * ok,
      lost,
      lostWithFailed,
      duplicated,
      socketsMissing,
      closedAfterOpen: closed,
      timeouts,
      p50: histogram.quantile(0.5),
      p99: histogram.quantile(0.99),
      max: histogram.quantile(1),
      reachedEveryoneMs: { p50: quantile(roundTrips, 0.5), max: quantile(roundTrips, 1), each: roundTrips.map(ms => round(ms)) },
      heartbeatPings: { total: pingsTotal, duringEachPublication: pingsDuring },
      withoutHeartbeat: { publications: quietRoundTrips.length, reachedEveryoneMaxMs: quantile(quietRoundTrips, 1), reachedEveryoneP50Ms: quantile(quietRoundTrips, 0.5) },
      rssPerConnection: { min: Math.min(...perNode.map(n => n.rssPerConnection)), max: Math.max(...perNode.map(n => n.rssPerConnection)) },
      rssTotalConnected: rssConnected.reduce((a, b) => a + b, 0),
      publishCpu: publishCpuSplit,
      interval,
      perNode
    }

    log('')
    table(log, ['node', 'connections (server count)', 'connect/s', 'server CPU per connect (µs)', 'RSS start (MiB)', 'RSS connected (MiB)', 'RSS per connection (KiB)', 'publish CPU (s)', 'publish CPU per delivery (µs)'],
      perNode.map(n => [n.node, `${n.connections} (${n.serverConnections ?? '?'})`, round(n.connectPerSecond), round(n.cpuMicrosPerConnect),
        MiB(n.rssStart), MiB(n.rssConnected), KiB(n.rssPerConnection), round(n.publishCpuSeconds, 2), round(n.publishCpuMicrosPerDelivery, 1)]))
    log('')
    table(log, ['metric', 'value'], [
      ['backend', redis.description],
      ['connections (authenticated, subscribed)', `${ok} of ${connections}${failed > 0 ? ` (${failed} failed: ${JSON.stringify(connectErrors)})` : ''}`],
      ['nodes / client processes (source addresses), client', `${nodeCount} / ${clientProcesses}, ${client === 'lean' ? 'lean (net.Socket, bench/client-worker.mjs)' : 'ws library'}`],
      ['connect rate, all nodes (connections/s)', `${round(result.connectPerSecond)} (${round(connectSeconds, 1)} s)`],
      ['connect rate per node (connections/s)', `${round(Math.min(...perNode.map(n => n.connectPerSecond)))} - ${round(Math.max(...perNode.map(n => n.connectPerSecond)))}`],
      ['RSS per connection per node (KiB)', `${KiB(result.rssPerConnection.min)} - ${KiB(result.rssPerConnection.max)}`],
      ['RSS of all nodes, connected (MiB)', MiB(result.rssTotalConnected)],
      ['Redis memory added by the connections (MiB)', MiB(result.redisUsedMemoryDelta)],
      ['Redis per connect: commands, counting those inside scripts / CPU (µs)', `${round(result.redisCommandsPerConnect, 2)} / ${round(result.redisCpuMicrosPerConnect)}`],
      ['publish-to-delivery p50 / p99 / max (ms)', `${round(result.p50, 1)} / ${round(result.p99, 1)} / ${round(result.max, 1)}`],
      ['publication reached every connection in (ms, p50 / max)', `${round(result.reachedEveryoneMs.p50)} / ${round(result.reachedEveryoneMs.max)}`],
      ['CPU per delivery over the publications (µs): server nodes (kernel) / client processes (kernel) / Redis / harness',
        `${round(publishCpuSplit.serverMicrosPerDelivery, 1)} (${round(publishCpuSplit.serverSystemMicrosPerDelivery, 1)}) / ${round(publishCpuSplit.clientMicrosPerDelivery, 1)} (${round(publishCpuSplit.clientSystemMicrosPerDelivery, 1)}) / ` +
        `${round(publishCpuSplit.redisMicrosPerDelivery, 2)} / ${round(publishCpuSplit.harnessMicrosPerDelivery, 2)}`],
      ['each publication reached every connection in (ms)', roundTrips.map(ms => round(ms)).join(', ')],
      ['heartbeat pings the clients received meanwhile, each publication (all measured publications)', `${pingsDuring.join(', ')} (${pingsTotal})`],
      ['publications that met no heartbeat ping: how many, reached everyone in (ms, p50 / max: an upper bound of their p99)',
        `${quietRoundTrips.length} of ${publications}, ${round(result.withoutHeartbeat.reachedEveryoneP50Ms)} / ${round(result.withoutHeartbeat.reachedEveryoneMaxMs)}`],
      ['cores busy over the publications (s of CPU per s): server nodes / client processes / Redis / harness',
        `${round(publishCpuSplit.serverCores, 2)} / ${round(publishCpuSplit.clientCores, 2)} / ${round(publishCpuSplit.redisCores, 3)} / ${round(publishCpuSplit.harnessCores, 3)} (${round(publishWallSeconds, 1)} s)`],
      ['deliveries measured', `${histogram.total} of ${result.expectedDeliveries} (${publications} publications x ${ok})`],
      ['lost / duplicated deliveries (whole run, warm-up included)', `${lost} / ${duplicated}${socketsMissing > 0 ? ` (${socketsMissing} connections missed some)` : ''}`],
      ['connections closed by the server during the run', closedCount === 0 ? '0' : `${closedCount} ${JSON.stringify(closed)}`],
      ['publications that did not reach everyone in time', timeouts]
    ])
    log(`\n  scale summary JSON: ${JSON.stringify({ ...result, perNode: undefined })}`)

    const scenario = `scale: ${ok} subscribed JWT connections, ${nodeCount} nodes, ${redis.label}`
    const row = (metric, value, digits = 0, better = 'lower') => ({ scenario, metric, ours: round(value, digits), baseline: null, baselineLabel: 'none', better })
    return {
      rows: [
        row('connections per second, all nodes (higher is better)', result.connectPerSecond, 0, 'higher'),
        row('RSS per connection, highest node (KiB)', result.rssPerConnection.max / 1024, 2),
        row('publish-to-delivery p50 (ms)', result.p50, 1),
        row('publish-to-delivery p99 (ms)', result.p99, 1),
        row('lost deliveries (should be 0)', lostWithFailed)
      ],
      detail: result
    }
  } finally {
    await Promise.all(pools.map(pool => pool.close()))
    await Promise.all(nodes.map(node => node.stop()))
    await redis.stop(log)
  }
}

function quantile (values, q) {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]
}
