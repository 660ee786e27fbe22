export { duplicatesOnly, openMessageStore, toStored } from './messages.js';
export type { BulkFailure, InsertResult, MessageDoc, MessageStore } from './messages.js';
