/**
 * @larch/fleet: device check-ins for larch-server — what every device runs, stages and rolled
 * back, its health, and the automatic pause of a ref whose newest commit fails on too many
 * devices. See README.md.
 */
export { createFleet, checkInBodySchema, checkInEvents, DEVICE_ID_RE, CHECK_IN_LIMIT, type Fleet, type FleetOptions, type DeviceView, type RefHealthView } from './fleet.js';
export { FleetStore, QueueFullError, type DeviceRecord, type FleetEvent, type FleetEventKind, type AutoPauseRecord, type FleetStoreOptions } from './store.js';
export { commitHealth, attempted, failedOn, shouldPause, pauseReason, DEFAULT_AUTO_PAUSE, type AutoPausePolicy, type CommitHealth } from './rollout-health.js';
