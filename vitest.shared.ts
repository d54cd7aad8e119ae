import { defineProject, type UserWorkspaceConfig } from 'vitest/config'

// Every package's vitest.config.ts calls this, so tests read src/ through the
// "@torus/source" export condition and never need a build first.
export function torusProject(name: string, test: UserWorkspaceConfig['test'] = {}): UserWorkspaceConfig {
  return defineProject({
    resolve: { conditions: ['@torus/source'] },
    ssr: { resolve: { conditions: ['@torus/source'] } },
    test: { name, restoreMocks: true, clearMocks: true, testTimeout: 30_000, hookTimeout: 60_000, ...test },
  })
}
