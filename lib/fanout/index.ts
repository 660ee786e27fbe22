// The bus: typed events (message broadcasts, presence, typing) over Redis Pub/Sub, with one codec.
export { createFanoutPublisher, createFanoutSubscriber } from './redis.js';
export {
  BUS_VERSION, PRESENCE_EVENT_LUA, decodeMessage, decodePresence, decodeTyping, encodeMessage, encodePresence, encodeTyping,
} from './codec.js';
export type { FanoutPublisher, FanoutSubscriber } from './redis.js';
export type { BusEvent, BusMessage, BusPresence, BusTyping } from './codec.js';
