// The crypto layer's public surface: backend, network key, key schedule, AEAD streams, replay window.
export * from './sodium.js';
export * from './network-key.js';
export * from './key-schedule.js';
export * from './aead.js';
export * from './replay-window.js';
