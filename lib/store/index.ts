export { openMessageStore, toStored } from './messages.js';
export type { MessageDoc, MessageStore } from './messages.js';
