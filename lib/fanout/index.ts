export { createFanoutPublisher, createFanoutSubscriber, connectRedis, roomChannel } from './redis.js';
export type { FanoutPublisher, FanoutSubscriber } from './redis.js';
