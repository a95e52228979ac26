// Small DOM helpers of the admin page: find an element (a missing one is a bug in the page), build one
// with text only (never innerHTML: topics, users and payloads come from the network), format figures.

/** The element with `id`; throws, naming it, when the markup lacks it. */
export function byId<T extends HTMLElement = HTMLElement> (id: string): T {
  const element = document.getElementById(id)
  if (element === null) throw new Error(`admin page: no #${id}`)
  return element as T
}

/** A new element with `text` as its content and the given attributes. */
export function element<K extends keyof HTMLElementTagNameMap> (tag: K, text = '', attributes: Record<string, string> = {}): HTMLElementTagNameMap[K] {
  const created = document.createElement(tag)
  created.textContent = text
  for (const [name, value] of Object.entries(attributes)) created.setAttribute(name, value)
  return created
}

/** A table cell that says what it holds on a phone, where the header row is hidden (admin.css). */
export function cell (label: string, text: string, attributes: Record<string, string> = {}): HTMLTableCellElement {
  return element('td', text, { 'data-label': label, ...attributes })
}

/** Shows `text` in a result line, marked ok or error (admin.css colours them). */
export function showResult (target: HTMLElement, status: 'ok' | 'error' | '', text: string): void {
  target.textContent = text
  if (status === '') target.removeAttribute('data-status')
  else target.dataset.status = status
}

export function formatBytes (bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`
}

export function formatDuration (ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000))
  const days = Math.floor(seconds / 86400)
  const hours = Math.floor(seconds % 86400 / 3600)
  const minutes = Math.floor(seconds % 3600 / 60)
  if (days > 0) return `${days}d ${hours}h`
  if (hours > 0) return `${hours}h ${minutes}m`
  if (minutes > 0) return `${minutes}m ${seconds % 60}s`
  return `${seconds}s`
}

/** A rate with the precision it deserves: 0.25, 3.4, 1,250. */
export function formatRate (perSecond: number): string {
  if (perSecond === 0) return '0'
  if (perSecond < 10) return perSecond.toFixed(2).replace(/\.?0+$/, '')
  return Math.round(perSecond).toLocaleString('en')
}

export function formatTime (ms: number): string {
  return new Date(ms).toLocaleTimeString('en-GB', { hour12: false })
}
