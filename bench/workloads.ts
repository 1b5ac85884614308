// The events the benchmark publishes: tenants of known shapes (seed example, 35 KB, large, small),
// license updates into them, and a realistic mix over many owners. Deterministic (seeded), so two
// runs publish the same shapes; ids look like KeyBox's (24 hex digits) so sizes are realistic.
import { buildEnvelope, type Envelope } from "@keybox/contract";
import { DEMO_OWNER_ID, exampleEvents } from "../scripts/seedExample.ts";
import { licenseEvent as licenseChange } from "../test/support/events.ts";
import { randomHistory } from "../test/support/history.ts";
import type { TenantShape } from "./options.ts";

export interface LicenseRecord {
  id: string;
  ownerId: string;
  clientId: string;
  projectId: string;
  /** The entity version of its latest event; updates bump it. */
  version: number;
  /** Its place in the tenant, for its times and whether it has a machine. */
  n: number;
}

export interface Tenant {
  ownerId: string;
  events: Envelope[];
  licenses: LicenseRecord[];
  /** The client holding most licenses, when the tenant has one. */
  bigClientId?: string;
}

/** 24 hex digits, like a MongoDB ObjectId: 8 for the tenant and kind, 16 for the number. */
const objectId = (prefix: number, n: number) =>
  prefix.toString(16).padStart(8, "0").slice(-8) + n.toString(16).padStart(16, "0");

const at = (minutes: number) => new Date(Date.UTC(2024, 0, 1) + minutes * 60_000).toISOString();

function clientCreated(ownerId: string, clientId: string, n: number): Envelope {
  return buildEnvelope({
    entity: "client",
    action: "created",
    version: 1,
    data: {
      id: clientId,
      ownerId,
      name: `Client ${n} GmbH`,
      email: `billing${n}@client${n}.example`,
      createdAt: at(n),
    },
  });
}

function projectCreated(ownerId: string, clientId: string, projectId: string, n: number): Envelope {
  return buildEnvelope({
    entity: "project",
    action: "created",
    version: 1,
    data: { id: projectId, ownerId, clientId, name: `Project ${n}`, createdAt: at(n) },
  });
}

/** The license as it stands at `license.version`: created at 1, renewed after (its key shows the version). */
export function licenseEvent(license: LicenseRecord): Envelope {
  const { id, ownerId, clientId, projectId, version, n } = license;
  return licenseChange(
    ownerId,
    id,
    {
      clientId,
      projectId,
      issuedAt: at(n),
      services: ["Hosting", "Domain"],
      ...(n % 2 === 0 ? { machineId: `m${id}` } : {}),
      createdAt: at(n),
    },
    { version, action: version === 1 ? "created" : "renewed" },
  );
}

/** Builds a tenant from how many licenses each of its projects holds, client by client. */
function buildTenant(ownerId: string, tag: number, projectsByClient: number[][]): Tenant {
  const events: Envelope[] = [];
  const licenses: LicenseRecord[] = [];
  let projectCount = 0;
  projectsByClient.forEach((licensesPerProject, c) => {
    const clientId = objectId(tag, c);
    events.push(clientCreated(ownerId, clientId, c));
    for (const count of licensesPerProject) {
      const projectId = objectId(tag + 1, projectCount);
      events.push(projectCreated(ownerId, clientId, projectId, projectCount++));
      for (let l = 0; l < count; l++) {
        const license = {
          id: objectId(tag + 2, licenses.length),
          ownerId,
          clientId,
          projectId,
          version: 1,
          n: licenses.length,
        };
        licenses.push(license);
        events.push(licenseEvent(license));
      }
    }
  });
  return { ownerId, events, licenses };
}

/** The API document's example: two clients, three projects, three licenses (~1.5 KB served). */
export function seedExampleTenant(): Tenant {
  return { ownerId: DEMO_OWNER_ID, events: exampleEvents(), licenses: [] };
}

/** 12 clients × 5 projects × 2 licenses (~35 KB served). */
export function mediumTenant(ownerId: string): Tenant {
  return buildTenant(
    ownerId,
    0x6d000000,
    Array.from({ length: 12 }, () => [2, 2, 2, 2, 2]),
  );
}

/**
 * `shape.licenses` licenses across `shape.clients` clients: the first client holds
 * `shape.bigClientLicenses` in one project, every other client two projects sharing the rest.
 */
export function largeTenant(ownerId: string, shape: TenantShape): Tenant {
  const otherProjects = (shape.clients - 1) * 2;
  const rest = shape.licenses - shape.bigClientLicenses;
  const perProject = (p: number) => Math.floor(rest / otherProjects) + (p < rest % otherProjects ? 1 : 0);
  const projectsByClient = [[shape.bigClientLicenses]];
  for (let c = 1; c < shape.clients; c++) projectsByClient.push([perProject(2 * c - 2), perProject(2 * c - 1)]);
  const tenant = buildTenant(ownerId, 0x1a000000, projectsByClient);
  return { ...tenant, bigClientId: tenant.licenses[0]!.clientId };
}

/** A small tenant: 2 clients × 2 projects sharing `licenses` licenses. */
export function smallTenant(ownerId: string, licenses: number): Tenant {
  const quarter = Math.floor(licenses / 4);
  return buildTenant(ownerId, 0x5a000000, [
    [quarter, quarter],
    [quarter, licenses - 3 * quarter],
  ]);
}

/** Owners for the freshness run: one client, two projects, ten licenses each. */
export function freshnessTenants(owners: number): Tenant[] {
  return Array.from({ length: owners }, (_, o) => buildTenant(`bench-fresh-${o}`, 0x3f000000, [[5, 5]]));
}

/** Owners whose live streams time deliveries (rows 9): one client, one project, one license each. */
export function liveProbeTenants(owners: number): Tenant[] {
  return Array.from({ length: owners }, (_, o) => buildTenant(`bench-live-${o}`, 0x4c000000, [[1]]));
}

/** `count` license updates, each to a license picked at random among `licenses` (versions bumped). */
export function licenseUpdates(licenses: LicenseRecord[], count: number, random: () => number): Envelope[] {
  return Array.from({ length: count }, () => {
    const license = licenses[Math.floor(random() * licenses.length)]!;
    license.version++;
    return licenseEvent(license);
  });
}

/** The test suite's realistic history (creates, updates, moves, deletes) over `owners` owners. */
export function realisticMix(events: number, owners: number, seed: number): Envelope[] {
  return randomHistory({ seed, owners: Array.from({ length: owners }, (_, o) => `bench-mix-${o}`), events });
}
