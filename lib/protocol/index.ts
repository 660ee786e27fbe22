export { ERROR_CODES, CLOSE_CODES, PROTOCOL_VERSION, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from './codes.js';
export { ProtocolError } from './errors.js';
export { parseClientFrame, isUserId, ROOM_ID, CLIENT_MSG_ID, USER_ID } from './frames.js';
export {
  welcomeFrame, joinedFrame, leftFrame, ackFrame, errorFrame, messageFrame, historyFrame, presenceFrame, typingFrame,
} from './server-frames.js';
export type { ErrorCode, CloseName } from './codes.js';
export type {
  RoomId, ClientFrame, JoinFrame, LeaveFrame, SendFrame, TypingFrame, HistoryFrame, RefreshFrame, StoredMessage, Broadcast, ParseLimits,
} from './frames.js';
