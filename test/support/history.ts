// A deterministic, realistic event history for the process-level tests: creates, updates, license
// lifecycle changes, projects moving between clients, licenses moving between projects, deletes.
import { buildEnvelope, type Envelope } from "@keybox/contract";
import { clientEvent, licenseEvent } from "./events.ts";

/** A small seeded generator (mulberry32), so a failing run can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomHistory(options: { seed: number; owners: string[]; events: number }): Envelope[] {
  const rnd = seededRandom(options.seed);
  const pick = <T>(items: T[]): T => items[Math.floor(rnd() * items.length)]!;
  const versions = new Map<string, number>();
  const next = (id: string) => {
    const v = (versions.get(id) ?? 0) + 1;
    versions.set(id, v);
    return v;
  };
  const time = (n: number) => new Date(Date.UTC(2024, 0, 1) + n * 60_000).toISOString();
  const out: Envelope[] = [];
  const clients = new Map<string, string[]>();
  const projects = new Map<string, { id: string; clientId: string }[]>();
  const statuses = ["PENDING", "ACTIVE", "REVOKED", "EXPIRED"] as const;

  for (let i = 0; out.length < options.events; i++) {
    const ownerId = pick(options.owners);
    const ownerClients = clients.get(ownerId) ?? [];
    const ownerProjects = projects.get(ownerId) ?? [];
    clients.set(ownerId, ownerClients);
    projects.set(ownerId, ownerProjects);
    const roll = rnd();
    if (ownerClients.length < 3 || roll < 0.1) {
      const id = `${ownerId}c${ownerClients.length}`;
      ownerClients.push(id);
      out.push(clientEvent(ownerId, id, { name: `Client ${id}`, createdAt: time(i) }, { version: next(id) }));
    } else if (ownerProjects.length < 3 || roll < 0.25) {
      const id = `${ownerId}p${ownerProjects.length}`;
      const clientId = pick(ownerClients);
      ownerProjects.push({ id, clientId });
      out.push(
        buildEnvelope({
          entity: "project",
          action: "created",
          version: next(id),
          data: { id, ownerId, clientId, name: `Project ${id}`, createdAt: time(i) },
        }),
      );
    } else if (roll < 0.3) {
      // A project moves to another client, or is renamed.
      const project = pick(ownerProjects);
      project.clientId = pick(ownerClients);
      out.push(
        buildEnvelope({
          entity: "project",
          action: "updated",
          version: next(project.id),
          data: {
            id: project.id,
            ownerId,
            clientId: project.clientId,
            name: `Project ${project.id} #${i}`,
            createdAt: time(0),
          },
        }),
      );
    } else if (roll < 0.33) {
      const project = pick(ownerProjects);
      out.push(
        buildEnvelope({
          entity: "project",
          action: "deleted",
          version: next(project.id),
          data: { id: project.id, ownerId, clientId: project.clientId },
        }),
      );
    } else if (roll < 0.35) {
      const id = pick(ownerClients);
      out.push(buildEnvelope({ entity: "client", action: "deleted", version: next(id), data: { id, ownerId } }));
    } else {
      // A license is created, changes status, or moves to another project (ids are reused so
      // that the same license changes many times).
      const id = `${ownerId}l${Math.floor(rnd() * 40)}`;
      const project = pick(ownerProjects);
      const version = next(id);
      // Drawn in this order (action, status, machine) so that a seed keeps giving the same history.
      const action = version === 1 ? "created" : pick(["updated", "activated", "revoked", "renewed"] as const);
      const status = pick([...statuses]);
      const machine = rnd() < 0.5 ? { machineId: `m${version}` } : {};
      out.push(
        licenseEvent(
          ownerId,
          id,
          {
            clientId: project.clientId,
            projectId: project.id,
            issuedAt: time(i),
            status,
            services: ["Hosting"],
            ...machine,
          },
          { version, action },
        ),
      );
    }
  }
  return out;
}
