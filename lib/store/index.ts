export { duplicatesOnly, openMessageStore, toDoc, toStored } from './messages.js';
export { createReadGate, ClientGoneError, StorageBusyError } from './gate.js';
export type { BulkFailure, InsertResult, MessageDoc, MessageStore, StoreOptions } from './messages.js';
export type { GateObserver, GateOptions, GateResult, ReadGate } from './gate.js';
