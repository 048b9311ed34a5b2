import { kafkajs } from '../src/sinks/kafka/kafkajs-client.js'

// Test code talks to the broker with kafkajs itself (admins, consumers that check what arrived). Loading it
// through the gateway's loader first gives the tests the same kafkajs the gateway runs: with the fixes it
// installs (src/sinks/kafka/kafkajs-client.ts), among them no TimeoutNegativeWarning on Node 24.
kafkajs()
