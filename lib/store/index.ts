export { duplicatesOnly, openMessageStore, toDoc, toStored } from './messages.js';
export { createReadGate, ClientGoneError, StorageBusyError } from './gate.js';
export type { BulkFailure, InsertResult, MessageDoc, MessageStore, StoreOptions } from './messages.js';
export type { GateObserver, GateOptions, GateResult, ReadGate } from './gate.js';
export { notificationId, openNotificationStore } from './notifications.js';
export type {
  ClaimDoc, MuteDoc, MuteStore, NotificationDoc, NotificationReason, NotificationState, NotificationStore, NotificationStoreOptions,
} from './notifications.js';
