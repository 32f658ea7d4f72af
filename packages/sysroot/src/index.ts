/**
 * @larch/sysroot: OSTree-compatible sysroots — deployments, the /etc three-way merge, Boot Loader
 * Spec entries and bootloader backends, atomic bootversion swaps, cleanup. See README.md and
 * spec/sysroot.md.
 */
export { Sysroot, UNLOCKED_RUNSTATE_FLAGS, type UnlockedState, deploymentName, sameDeployment, isPinned, DEPLOY_NAME_RE, encodeStaged, decodeStaged, type Deployment, type LockOptions, type SysrootOptions, type StagedRecord } from './sysroot.js';
export { BootConfig, strverscmp } from './bootconfig.js';
export { KernelArgs, splitCmdline } from './kargs.js';
export { findKernel, installKernel, type KernelLayout } from './kernel.js';
export { diffEtc, applyEtcMerge, previewEtcMerge, type EtcDiff, type EtcPreview, type EtcPreviewEntry, type EtcPreviewAction, type EtcConflict } from './etc-merge.js';
export { selectBootloader, grub2MenuEntries, type Grub2GenerateEnv, joinLines, syslinux, uboot, grub2, GRUB2_MKCONFIG, type Bootloader, type BootloaderType, type BootloaderContext } from './bootloader.js';
export { grubBlsConfig, grubMenuEntryFromBls, grubQuote, checkGrubText, formatGrubenv, parseGrubenv, readGrubenv, writeGrubenv, trialBootState, startTrialBoot, markBootGood, GRUBENV_PATH, GRUBENV_SIZE, MAX_TRIAL_BOOTS, type GrubMenuEntry, type GrubBlsConfigOptions, type TrialBootState } from './grub-bls.js';
export { larchGrub, larchGrubMenu, installLarchGrubMenu, hasLarchGrubMenu, clearTrialBoot, trialAction, rootUuidOf, LARCH_GRUB_MARK, LARCH_GRUB_CFG, type TrialAction } from './bootloader-larch-grub.js';
export { writeDeployments, assignBootserials, parseOsRelease, configuredBootloader, type WriteResult, type WriteOptions } from './write-deployments.js';
export { cleanupSysroot, type CleanupOptions, type CleanupResult } from './cleanup.js';
export {
  initFs,
  osInit,
  deploy,
  finalizeStaged,
  previewDeploy,
  configDiff,
  setOrigin,
  type ConfigDiff,
  planDeploymentList,
  computeKargs,
  undeploy,
  setDefault,
  rollback,
  pin,
  editKargs,
  editKargsInPlace,
  setKargs,
  cleanup,
  formatSize,
  procCmdlineKargs,
  type Log,
  type KargOptions,
  type DeployOptions,
  type DeployResult,
  type DeployPreview,
  type ListEditResult,
} from './deploy.js';
export { upgrade, upgradeOrigin, checkTimestamps, removeTransientState, ENDOFLIFE_REBASE_KEY, type UpgradeOptions, type UpgradeResult, type UpgradePullRequest } from './upgrade.js';
export { unlock, type UnlockTarget, type UnlockResult } from './unlock.js';
export { sysrootStatus, formatStatus, formatDeploymentHeader, formatDeploymentDetails, type SysrootStatus, type DeploymentStatus } from './status.js';
export { setImmutable } from './fsutil.js';
export type { SysrootReason } from './errors.js';
