export { createFanoutPublisher, createFanoutSubscriber } from './redis.js';
export type { FanoutPublisher, FanoutSubscriber } from './redis.js';
