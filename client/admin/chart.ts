// One line chart of a figure over the last minutes (up to five) (connections, deliveries per second), drawn as inline
// SVG from the samples the page takes at each poll. No chart library: a polyline in a 1000 x 100 box
// stretched to the plot (the stroke keeps its width), and the labels as HTML beside it. The samples
// older than the window are dropped, so a page left open for days holds the same few hundred.
import { element } from './dom.js'

export const CHART_WINDOW_MS = 5 * 60_000
/** A page open for less than this still spreads its first samples over this much: a line, not a dot. */
const MIN_SPAN_MS = 30_000
/** A bound on the samples kept, whatever the poll interval. */
const MAX_SAMPLES = 600
const SVG = 'http://www.w3.org/2000/svg'
const WIDTH = 1000
const HEIGHT = 100

interface Sample { at: number, value: number }

/** The next round number at or above `value` (1, 2, 5 × 10^n): an axis that reads well. */
export function roundUp (value: number): number {
  if (value <= 1) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 5, 10]) {
    if (value <= step * power) return step * power
  }
  return 10 * power
}

export class Chart {
  private samples: Sample[] = []
  private readonly current: HTMLElement
  private readonly top: HTMLElement
  private readonly start: HTMLElement
  private readonly svg: SVGSVGElement
  private readonly line: SVGPolylineElement
  private readonly area: SVGPolygonElement

  constructor (figure: HTMLElement, private readonly title: string, private readonly format: (value: number) => string) {
    this.current = element('strong', '—', { 'data-testid': 'chart-value' })
    const caption = element('figcaption')
    caption.append(element('span', title), this.current)
    this.svg = document.createElementNS(SVG, 'svg')
    this.svg.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`)
    this.svg.setAttribute('preserveAspectRatio', 'none')
    this.svg.setAttribute('role', 'img')
    this.area = document.createElementNS(SVG, 'polygon')
    this.line = document.createElementNS(SVG, 'polyline')
    this.svg.append(this.area, this.line)
    this.top = element('span', '', { class: 'axis top' })
    this.start = element('span', '', { class: 'axis start' })
    const plot = element('div', '', { class: 'plot' })
    plot.append(this.svg, this.top, this.start, element('span', 'now', { class: 'axis end' }))
    figure.replaceChildren(caption, plot)
    this.render()
  }

  /** A new sample; null (not known yet) shows as a dash and draws nothing. */
  add (at: number, value: number | null): void {
    if (value !== null) this.samples.push({ at, value })
    const oldest = at - CHART_WINDOW_MS
    while (this.samples.length > 0 && (this.samples[0].at < oldest || this.samples.length > MAX_SAMPLES)) this.samples.shift()
    this.current.textContent = value === null ? '—' : this.format(value)
    this.render(at)
  }

  clear (): void {
    this.samples = []
    this.current.textContent = '—'
    this.render()
  }

  private render (now = Date.now()): void {
    const max = roundUp(Math.max(0, ...this.samples.map(sample => sample.value)))
    // The time the samples cover, up to the window: a page opened a minute ago shows that minute.
    const span = Math.min(CHART_WINDOW_MS, Math.max(MIN_SPAN_MS, now - (this.samples[0]?.at ?? now)))
    const points = this.samples.map(({ at, value }) => {
      const x = (1 - (now - at) / span) * WIDTH
      const y = HEIGHT - value / max * HEIGHT
      return `${x.toFixed(1)},${y.toFixed(1)}`
    })
    this.line.setAttribute('points', points.join(' '))
    const first = points[0]?.split(',')[0]
    const last = points[points.length - 1]?.split(',')[0]
    this.area.setAttribute('points', points.length < 2 ? '' : `${points.join(' ')} ${last},${HEIGHT} ${first},${HEIGHT}`)
    this.top.textContent = this.format(max)
    const ago = span < 60_000 ? `${Math.round(span / 1000)} s ago` : `${Math.round(span / 60_000)} min ago`
    this.start.textContent = ago
    this.svg.setAttribute('aria-label', `${this.title} since ${ago}: now ${this.current.textContent ?? ''}, at most ${this.format(max)}`)
  }
}
