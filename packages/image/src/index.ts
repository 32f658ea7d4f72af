/**
 * @larch/image: bootable GPT disk images of a Larch deployment, made from plain files (no loop
 * devices, no mounts). See README.md.
 */
export { buildImage, type ImageBuildOptions, type ImageBuildResult, type ImageBootloader, type CustomizeContext } from './image-build.js';
export { grubConfig, espGrubConfig, ROOT_MENU, grubQuote, menuEntryFromBls, checkGrubText, type MenuEntry, type GrubConfigOptions } from './grub-config.js';
export { parseSize } from './size.js';
export { findTool, requireTools, TOOL_PACKAGES } from './tools.js';
