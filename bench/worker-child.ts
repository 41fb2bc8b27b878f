/**
 * The Node worker under test, in its own process so its CPU can be read from /proc: the
 * library's CLI (`celery-amqp worker ...`, the arguments given), as a user runs it.
 *
 * @module
 */
import { main } from '../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
