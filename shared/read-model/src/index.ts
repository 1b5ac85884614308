// @keybox/read-model: the stored shape of the dashboards, licenses in their rendered form, and the
// DashboardStore interface, the read model's generations. The adapters are subpaths
// (`@keybox/read-model/lmdb`, `/mongodb`), and `openReadModel` loads only the one it picks.
export {
  compareOrder,
  compareTimeAndId,
  keyId,
  LICENSE_CHUNK_TARGET_BYTES,
  PART_MAX_BYTES,
  partKey,
  READ_MODEL_FORMAT,
  registerKey,
  type ChunkRange,
  type ClientPart,
  type Entry,
  type LicenseChunk,
  type LicenseEntry,
  type LicenseRegister,
  type OrderKey,
  type Part,
  type PartKey,
  type ProjectHead,
  type ProjectRegister,
  type RecordKey,
  type Register,
  type RegisterKey,
  type StoredRecord,
} from "./shape.ts";
export {
  decodeFragment,
  encodeFragment,
  fragmentBody,
  licenseBytesAt,
  type ClientFragment,
  type Fragment,
  type LicenseSlot,
  type LicensesFragment,
  type ProjectFragment,
} from "./fragments.ts";
export { licenseJsonAt, renderLicense, type LicenseView, type RenderedLicense } from "./licenseView.ts";
export {
  StoreUnavailableError,
  isBrokenStore,
  type Commit,
  type CommitResult,
  type Committed,
  type DashboardChange,
  type DashboardSnapshot,
  type DashboardStore,
  type PartStats,
  type RecordRead,
  type RecordWrite,
  type RevisionedRecord,
  type StoredFragment,
} from "./store.ts";
export { openReadModel, storeSettings, type OpenReadModelOptions, type StoreSettings } from "./openStore.ts";
export {
  forgetRetired,
  generationDurable,
  INITIAL_CONTROL,
  requestRebuild,
  switchTo,
  upgradeTo,
  type ControlRecord,
  type ControlTransition,
  type ControlUpdate,
  type GenerationInfo,
  type ReadModel,
} from "./generations.ts";
