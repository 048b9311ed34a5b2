import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'bench/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          // In-process gateways over real loopback sockets; no external backends needed.
          name: 'http',
          include: ['test/http/**/*.test.ts', 'test/conformance/**/*.test.ts'],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          // Real Kafka, S3 (MinIO) and Kinesis (kinesis-local), started by test/backends.setup.ts.
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/backends-rig.test.ts'],
          globalSetup: ['test/backends.setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 900_000,
          // Integration files share real backends; run them one file at a time to keep the 2-core box calm.
          fileParallelism: false,
        },
      },
    ],
  },
})
