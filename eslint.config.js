import tseslint from 'typescript-eslint'

// The boundaries docs/design.md draws, enforced (scripts/import-cycles.mjs adds "no cycles").
const OCLIF = {
  name: '@oclif/core',
  message: 'src/ is a library: oclif belongs in commands/ and cli/.',
}
const PROCESSES = ['node:child_process', 'child_process', 'execa', 'systeminformation'].map((name) => ({
  name,
  message: 'Only src/system/ runs tools and spawns processes: add a wrapper there (src/system/exec.ts run).',
}))

export default tseslint.config(
  {ignores: ['dist/', 'node_modules/', 'bin/']},
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        {argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_'},
      ],
      // Walking up a tree from `this` needs a local that starts as `this`.
      '@typescript-eslint/no-this-alias': 'off',
    },
  },
  {
    files: ['src/system/**/*.ts'],
    rules: {'no-restricted-imports': ['error', {paths: [OCLIF]}]},
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/system/**'],
    rules: {'no-restricted-imports': ['error', {paths: [OCLIF, ...PROCESSES]}]},
  },
  {
    files: ['cli/**/*.ts', 'commands/**/*.ts'],
    rules: {'no-restricted-imports': ['error', {paths: PROCESSES}]},
  },
)
