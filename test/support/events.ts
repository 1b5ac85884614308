// Event builders shared by the tests. Each fills in a valid state with plain defaults, so a call
// site writes only the fields its test is about; whatever a test asserts on belongs in `data`
// there, not in a default here.
import {
  buildEnvelope,
  type Action,
  type ClientState,
  type Envelope,
  type LicenseState,
  type ProjectState,
} from "@keybox/contract";

/** The time the defaults use: fixed, so that runs (and orderings by time) are repeatable. */
const T0 = "2024-01-01T00:00:00.000Z";
/** A default expiry far enough ahead that a license never expires during a test. */
const FAR_FUTURE = "2099-01-01T00:00:00.000Z";

/** An event's place in its entity's history: version 1 is "created", later ones "updated", unless `action` is given. */
export interface Change {
  version?: number;
  action?: Action;
}
const versioned = ({ version = 1, action }: Change) => ({
  version,
  action: action ?? (version === 1 ? "created" : "updated"),
});

/** A client event of `ownerId`; by default created at version 1 and named by its id. */
export const clientEvent = (
  ownerId: string,
  id: string,
  data: Partial<ClientState> = {},
  change: Change = {},
): Envelope =>
  buildEnvelope({
    entity: "client",
    ...versioned(change),
    data: { id, ownerId, name: id, email: `${id}@x.io`, createdAt: T0, ...data },
  });

/** A client of `ownerId` created at version 1. */
export const clientCreated = (ownerId: string, id: string, data: Partial<ClientState> = {}): Envelope =>
  clientEvent(ownerId, id, data);

/** A project of `ownerId` under `data.clientId`, created at version 1 and named by its id. */
export const projectCreated = (
  ownerId: string,
  id: string,
  { clientId, ...data }: Pick<ProjectState, "clientId"> & Partial<ProjectState>,
): Envelope =>
  buildEnvelope({
    entity: "project",
    action: "created",
    version: 1,
    data: { id, ownerId, clientId, name: id, createdAt: T0, ...data },
  });

/**
 * A license event of `ownerId` under `data.clientId` and `data.projectId`; by default created at
 * version 1, ACTIVE until far ahead, with a key that names its id and version.
 */
export const licenseEvent = (
  ownerId: string,
  id: string,
  { clientId, projectId, ...data }: Pick<LicenseState, "clientId" | "projectId"> & Partial<LicenseState>,
  change: Change = {},
): Envelope => {
  const { version, action } = versioned(change);
  return buildEnvelope({
    entity: "license",
    action,
    version,
    data: {
      id,
      ownerId,
      clientId,
      projectId,
      key: `KB-${id}-${version}`,
      duration: 12,
      issuedAt: T0,
      expiresAt: FAR_FUTURE,
      status: "ACTIVE",
      services: [],
      ...data,
    },
  });
};
