// The topics table: the busiest topics of the node that answers (GET /api/topics), filtered by a pattern
// (`orders.*`, `chat.>`), each with a button that puts it into the tail, publish and presence forms.
import { cell, element, formatRate, showResult } from './dom.js'

export interface TopicRow {
  topic: string
  subscribers: number
  epoch?: string
  offset?: number
  publications: number
  rate: number
}

export interface TopicsAnswer {
  node: string
  matched: number
  topics: TopicRow[]
}

export class TopicsView {
  pattern = ''
  limit = '20'

  constructor (
    private readonly table: HTMLTableElement,
    private readonly nodeLabel: HTMLElement,
    private readonly result: HTMLElement,
    private readonly use: (topic: string) => void
  ) {}

  /** The query string of GET /api/topics for the current filter. */
  query (): Record<string, string> {
    return this.pattern === '' ? { limit: this.limit } : { pattern: this.pattern, limit: this.limit }
  }

  update (answer: TopicsAnswer): void {
    // The rows are rebuilt at every poll: a "Use" button that had the focus gets it back.
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.topic
    this.table.tBodies[0].replaceChildren(...answer.topics.map(row => this.row(row)))
    if (focused !== undefined) this.table.querySelector<HTMLElement>(`button[data-topic="${CSS.escape(focused)}"]`)?.focus()
    this.nodeLabel.textContent = `on node ${answer.node}`
    const filter = this.pattern === '' ? '' : ` matching ${this.pattern}`
    const text = answer.matched === 0
      ? `No topic${filter} has a subscriber on this node.`
      : `${answer.topics.length} of ${answer.matched} topic${answer.matched === 1 ? '' : 's'}${filter}, busiest first.`
    showResult(this.result, '', text)
  }

  clear (): void {
    this.table.tBodies[0].replaceChildren()
    showResult(this.result, '', '')
    this.nodeLabel.textContent = ''
  }

  refused (message: string): void {
    this.table.tBodies[0].replaceChildren()
    showResult(this.result, 'error', message)
  }

  private row ({ topic, subscribers, epoch, offset, rate }: TopicRow): HTMLTableRowElement {
    const row = element('tr', '', { 'data-topic': topic })
    const use = element('button', 'Use', { type: 'button', class: 'link', 'data-topic': topic, 'aria-label': `Use ${topic} in the tail, publish and presence forms` })
    use.addEventListener('click', () => this.use(topic))
    const action = element('td', '', { 'data-label': '' })
    action.append(use)
    row.append(
      cell('Topic', topic, { class: 'mono' }),
      cell('Subscribers', subscribers.toLocaleString('en'), { class: 'num', 'data-field': 'subscribers' }),
      cell('Offset', offset === undefined ? '—' : offset.toLocaleString('en'), { class: 'num', 'data-field': 'offset', title: epoch === undefined ? '' : `epoch ${epoch}` }),
      cell('Publications/s', formatRate(rate), { class: 'num', 'data-field': 'rate' }),
      action
    )
    return row
  }
}
