/**
 * Type declarations for the two compression packages that ship none, limited to what
 * compression-codecs.ts uses.
 */
declare module 'seek-bzip' {
  /** A byte source: `readByte` returns the next byte; `eof` tells when none is left. */
  interface ByteInput {
    readByte(): number;
    read(into: Uint8Array, offset: number, length: number): number;
    seek(pos: number): void;
    eof(): boolean;
  }
  /** A byte sink. */
  interface ByteOutput {
    writeByte(byte: number): void;
  }
  /** seek-bzip's decoder (module.exports). */
  const Bunzip: {
    /** Decodes whole bzip2 streams from `input` into `output`; throws TypeError on bad data. */
    decode(input: ByteInput, output: ByteOutput, multistream?: boolean): void;
  };
  export = Bunzip;
}

declare module 'lzma-native' {
  /** liblzma's coder, driven synchronously (`code(chunk, false)`). */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars -- used through `typeof` below
  class LzmaStream {
    constructor();
    /** Decoder for .xz and .lzma, as Python's lzma.decompress (FORMAT_AUTO). */
    autoDecoder(options: { memlimit?: number; flags?: number }): void;
    /** .xz encoder with a preset (0-9) and an integrity check. */
    easyEncoder(options: { preset?: number; check?: number }): void;
    /** Feeds a chunk (`null` finishes); output and errors go to `bufferHandler`. */
    code(chunk: Buffer | null, async: boolean): void;
    /** Frees the native coder. */
    resetUnderlying(): void;
    /** Receives output (`buf`), the end (`buf === null`), or an error. */
    bufferHandler: (buf: Buffer | null, processedChunks: number | null, err: Error | null) => void;
  }
  const lzma: {
    Stream: typeof LzmaStream;
    CHECK_CRC64: number;
  };
  export = lzma;
}
