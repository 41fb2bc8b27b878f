/**
 * fromReply: which broker closes are recoverable by reconnecting (py-amqp's split between
 * RecoverableConnectionError and IrrecoverableConnectionError), and which class they map to.
 */
import { describe, expect, it } from 'vitest';
import { ChannelError, ConnectionError, fromReply } from '../../src/errors.js';

describe('fromReply', () => {
  it.each([
    [320, 'CONNECTION_FORCED', true],
    [506, 'RESOURCE_ERROR', true],
    [402, 'INVALID_PATH', false],
    [501, 'FRAME_ERROR', false],
    [502, 'SYNTAX_ERROR', false],
    [503, 'COMMAND_INVALID', false],
    [504, 'CHANNEL_ERROR', false],
    [505, 'UNEXPECTED_FRAME', false],
    [530, 'NOT_ALLOWED', false],
    [540, 'NOT_IMPLEMENTED', false],
    [541, 'INTERNAL_ERROR', false],
  ])('connection-level %i is a ConnectionError %s, recoverable: %s', (code, name, recoverable) => {
    const err = fromReply(code, `${name} - text`);
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.code).toBe(name);
    expect(err.replyCode).toBe(code);
    expect(err.recoverable).toBe(recoverable);
  });

  it.each([
    [403, 'ACCESS_REFUSED'],
    [404, 'NOT_FOUND'],
    [405, 'RESOURCE_LOCKED'],
    [406, 'PRECONDITION_FAILED'],
  ])('channel-level %i is a ChannelError %s, not recoverable', (code, name) => {
    const err = fromReply(code, `${name} - text`);
    expect(err).toBeInstanceOf(ChannelError);
    expect(err.code).toBe(name);
    expect(err.recoverable).toBe(false);
  });
});
