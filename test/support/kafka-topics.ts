import type { Admin, ITopicConfig } from 'kafkajs'

/**
 * Creates topics and waits until every partition has a leader. kafkajs' own `waitForLeaders` gives up with
 * UNKNOWN_TOPIC_OR_PARTITION ("This server does not host this topic-partition") when a freshly started broker
 * answers its metadata request before it hosts the new partitions (seen in a clean CI run); the topics were
 * created then, so the leaders are waited for here, bounded in time.
 */
export async function createTopicsWithLeaders(
  admin: Admin,
  topics: ITopicConfig[],
  timeoutMs = 30_000,
): Promise<void> {
  try {
    await admin.createTopics({ waitForLeaders: true, topics })
    return
  } catch (err) {
    if ((err as { type?: unknown }).type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw err
  }
  const names = topics.map((t) => t.topic)
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const { topics: meta } = await admin.fetchTopicMetadata({ topics: names })
      if (meta.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return
    } catch (err) {
      last = err
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`topics ${names.join(', ')} have no leaders after ${timeoutMs} ms`, { cause: last })
}
