// The events behind the example response of the API document (../shared/seed): two clients,
// three projects, three licenses of one demo owner, as the write side would publish them.
import { buildEnvelope, type Envelope } from "@keybox/contract";

export const DEMO_OWNER_ID = "60f7b3b3e6b3a72e8c8e4a19";

export function exampleEvents(ownerId = DEMO_OWNER_ID): Envelope[] {
  const created = { action: "created" as const, version: 1 };
  return [
    buildEnvelope({
      ...created,
      entity: "client",
      data: {
        id: "60f7b3b3e6b3a72e8c8e4a1a",
        ownerId,
        name: "Acme Corporation",
        email: "[email protected] ",
        createdAt: "2023-12-01T00:00:00.000Z",
      },
    }),
    buildEnvelope({
      ...created,
      entity: "client",
      data: {
        id: "60f7b3b3e6b3a72e8c8e4a1f",
        ownerId,
        name: "TechStart Inc",
        email: "[email protected] ",
        createdAt: "2023-12-15T00:00:00.000Z",
      },
    }),
    buildEnvelope({
      ...created,
      entity: "project",
      data: {
        id: "60f7b3b3e6b3a72e8c8e4a1b",
        ownerId,
        clientId: "60f7b3b3e6b3a72e8c8e4a1a",
        name: "E-commerce Website",
        createdAt: "2023-12-02T00:00:00.000Z",
      },
    }),
    buildEnvelope({
      ...created,
      entity: "project",
      data: {
        id: "60f7b3b3e6b3a72e8c8e4a1d",
        ownerId,
        clientId: "60f7b3b3e6b3a72e8c8e4a1a",
        name: "Mobile App Backend",
        createdAt: "2023-12-03T00:00:00.000Z",
      },
    }),
    buildEnvelope({
      ...created,
      entity: "project",
      data: {
        id: "60f7b3b3e6b3a72e8c8e4a20",
        ownerId,
        clientId: "60f7b3b3e6b3a72e8c8e4a1f",
        name: "SaaS Platform",
        createdAt: "2023-12-16T00:00:00.000Z",
      },
    }),
    buildEnvelope({
      action: "activated",
      version: 2,
      entity: "license",
      data: {
        id: "60f7b3b3e6b3a72e8c8e4a1c",
        ownerId,
        clientId: "60f7b3b3e6b3a72e8c8e4a1a",
        projectId: "60f7b3b3e6b3a72e8c8e4a1b",
        key: "KB-60f7b3b3e6b3a72e8c8e4a1b-A1B2-C3D4-E5F6",
        duration: 12,
        issuedAt: "2024-01-01T00:00:00.000Z",
        expiresAt: "2025-01-01T00:00:00.000Z",
        status: "ACTIVE",
        services: ["Hosting", "Domain"],
        machineId: "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6",
      },
    }),
    buildEnvelope({
      ...created,
      entity: "license",
      data: {
        id: "60f7b3b3e6b3a72e8c8e4a1e",
        ownerId,
        clientId: "60f7b3b3e6b3a72e8c8e4a1a",
        projectId: "60f7b3b3e6b3a72e8c8e4a1d",
        key: "KB-60f7b3b3e6b3a72e8c8e4a1d-B2C3-D4E5-F6G7",
        duration: 6,
        issuedAt: "2024-02-01T00:00:00.000Z",
        expiresAt: "2024-08-01T00:00:00.000Z",
        status: "PENDING",
        services: ["Hosting"],
      },
    }),
    buildEnvelope({
      action: "activated",
      version: 2,
      entity: "license",
      data: {
        id: "60f7b3b3e6b3a72e8c8e4a21",
        ownerId,
        clientId: "60f7b3b3e6b3a72e8c8e4a1f",
        projectId: "60f7b3b3e6b3a72e8c8e4a20",
        key: "KB-60f7b3b3e6b3a72e8c8e4a20-C3D4-E5F6-G7H8",
        duration: 12,
        issuedAt: "2024-01-15T00:00:00.000Z",
        expiresAt: "2025-01-15T00:00:00.000Z",
        status: "ACTIVE",
        services: ["Hosting", "Domain"],
        machineId: "b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7",
      },
    }),
  ];
}
