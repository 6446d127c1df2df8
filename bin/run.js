#!/usr/bin/env node
// Entry point: oclif finds the commands through package.json ("oclif.commands").
import {execute} from '@oclif/core'

await execute({dir: import.meta.url})
