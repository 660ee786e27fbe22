export { ERROR_CODES, CLOSE_CODES, PROTOCOL_VERSION, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from './codes.js';
export { ProtocolError } from './errors.js';
export { clientIdOf, namespacedId, storedAt } from './message.js';
export { parseClientFrame, isUserId, untilOf, ROOM_ID, CLIENT_MSG_ID, USER_ID } from './frames.js';
export {
  welcomeFrame, joinedFrame, leftFrame, ackFrame, errorFrame, messageFrame, historyFrame, presenceFrame, typingFrame,
  mutedFrame, unmutedFrame,
} from './server-frames.js';
export type { ErrorCode, CloseName } from './codes.js';
export type {
  RoomId, ClientFrame, JoinFrame, LeaveFrame, SendFrame, TypingFrame, HistoryFrame, RefreshFrame, ParseLimits, MuteFrame, UnmuteFrame,
} from './frames.js';
export type { Broadcast, ChatMessage, StoredMessage } from './message.js';
export type {
  ServerFrame, WelcomeFrame, JoinedFrame, LeftFrame, MessageFrame, AckFrame, PresenceFrame, TypingEventFrame, HistoryPageFrame,
  RefreshedFrame, ErrorFrame, MutedFrame, UnmutedFrame,
} from './server-types.js';
