// Small event builders shared by the tests that only need some events to apply.
import { buildEnvelope, type Envelope } from "@keybox/contract";

/** A client of `ownerId` created at version 1, named by its id. */
export const clientCreated = (ownerId: string, id: string): Envelope =>
  buildEnvelope({
    entity: "client",
    action: "created",
    version: 1,
    data: { id, ownerId, name: id, email: `${id}@x.io`, createdAt: "2024-01-01T00:00:00.000Z" },
  });
