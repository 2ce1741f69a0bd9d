import { and, desc, eq, inArray } from 'drizzle-orm';
import { findAuthorisation } from '../licence/holder.ts';
import { effectiveStatus, signedFormsOf } from '../licence/issue.ts';
import type { LicencePki } from '../licence/pki.ts';
import { licenceObjections, licences, licenceTypes, licenceUses } from '../licence/schema.ts';
import type { LicenceSource } from './resolve.ts';

/** The licence store as the resolution sees it: the holder's licences (signed forms as issued), 授权用证, 用证记录. */
export const licenceStore = (pki: LicencePki): LicenceSource => ({
  async candidates(db, holderCode, typeCodes) {
    if (typeCodes.length === 0) return [];
    const found = await db
      .select({ l: licences, typeName: licenceTypes.name, faceFields: licenceTypes.faceFields, numberIsPersonalId: licenceTypes.numberIsPersonalId })
      .from(licences)
      .innerJoin(licenceTypes, eq(licenceTypes.code, licences.typeCode))
      .where(and(eq(licences.holderCode, holderCode), inArray(licences.typeCode, [...typeCodes])))
      .orderBy(desc(licences.issuedAt), desc(licences.version));
    if (found.length === 0) return [];
    const disputed = await db
      .select({ identifier: licenceObjections.identifier })
      .from(licenceObjections)
      .where(and(inArray(licenceObjections.identifier, found.map((f) => f.l.identifier)), eq(licenceObjections.status, 'PENDING')));
    const underObjection = new Set(disputed.map((d) => d.identifier));
    return Promise.all(found.map(async ({ l, typeName, faceFields, numberIsPersonalId }) => ({
      identifier: l.identifier,
      typeCode: l.typeCode,
      typeName,
      number: l.number,
      holderName: l.holderName,
      holderCode: l.holderCode,
      issuerName: l.issuerName,
      issuerCode: l.issuerCode,
      status: effectiveStatus(l),
      validFrom: l.validFrom,
      validUntil: l.validUntil,
      underObjection: underObjection.has(l.identifier),
      ...(await signedFormsOf(pki, l)),
      type: { faceFields, numberIsPersonalId },
    })));
  },
  async authorised(db, q) {
    return Boolean(await findAuthorisation(db, q));
  },
  async recordUses(db, uses) {
    if (uses.length) await db.insert(licenceUses).values(uses);
  },
});
