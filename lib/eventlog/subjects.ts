// Subject names of the CHAT stream. Room ids are validated before they get here (no `.`, `*`, `>`, spaces).
import type { RoomId } from '../protocol/index.js';

export function createdSubject(root: string, room: RoomId): string {
  return `${root}.message.created.${room}`;
}

/** The subject as a low-cardinality template, for span names. */
export function createdTemplate(root: string): string {
  return `${root}.message.created.{room}`;
}

export function createdWildcard(root: string): string {
  return `${root}.message.created.*`;
}

export function streamSubjects(root: string): string[] {
  // edited/deleted are reserved by the design; the stream accepts them now so adding them later needs no migration.
  return [`${root}.message.created.*`, `${root}.message.edited.*`, `${root}.message.deleted.*`];
}
