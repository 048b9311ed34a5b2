import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          globalSetup: ['test/backends.setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 600_000,
          // Integration files share real backends; run them one file at a time to keep the 2-core box calm.
          fileParallelism: false,
        },
      },
    ],
  },
})
