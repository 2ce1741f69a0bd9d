import type { AuditRecord, AuditWriter } from '../audit/writer.ts';
import { requireRole, type ClientPrincipal, type HubContext } from '../core/context.ts';
import { HubError } from '../core/errors.ts';
import type { GrantChecker } from './access.ts';

/** 用途: every read of personal or company data declares what it is for. */
export interface PurposeInput {
  /** 事项编码 */
  itemCode: string;
  /** 办件编号 */
  caseId?: string | null;
  /** 经办人 */
  operator?: string | null;
  withholdBasis?: string | null;
}

export interface PurposePorts {
  grants: GrantChecker;
  audit: AuditWriter;
  /** entry ids of this request's audited reads, returned in `extensions.auditIds` */
  auditIds: string[];
}

/**
 * The checks every purpose-bound read of the query API makes, in the contract's order after the subject codes
 * (FORBIDDEN: a consumer; PURPOSE_REQUIRED: a registered item; FORBIDDEN: withholdBasis needs its permission). Each
 * refusal is recorded, one entry per subject, before it is thrown.
 */
export class PurposeBoundRead {
  constructor(
    private readonly ctx: HubContext & PurposePorts,
    private readonly operation: string,
    private readonly purpose: PurposeInput,
    private readonly subjects: readonly string[],
    private readonly extra: Partial<AuditRecord> = {},
  ) {}

  /** An entry of this read about one subject; REFUSED unless `more` says otherwise. */
  record(subject: string, more: Partial<AuditRecord> = {}): AuditRecord {
    const p = this.ctx.principal;
    return {
      clientId: p.kind === 'client' ? p.clientId : null,
      department: p.kind === 'client' ? p.department : null,
      operator: this.purpose?.operator ?? null,
      itemCode: this.purpose?.itemCode ?? null,
      caseId: this.purpose?.caseId ?? null,
      operation: this.operation,
      subject,
      requestId: this.ctx.requestId,
      outcome: 'REFUSED',
      ...this.extra,
      ...more,
    };
  }

  async refuse(error: HubError): Promise<never> {
    const ids = await this.ctx.audit.appendMany(this.subjects.map((s) => this.record(s, { reason: String(error.extensions.code) })));
    this.ctx.auditIds.push(...ids.map(String));
    throw error;
  }

  /** The calling approval system (role consumer). */
  async consumer(): Promise<ClientPrincipal> {
    try {
      return requireRole(this.ctx, 'consumer');
    } catch (error) {
      return this.refuse(error as HubError);
    }
  }

  /** The declared 事项编码, registered. */
  async itemCode(): Promise<string> {
    const itemCode = this.purpose?.itemCode?.trim();
    if (!itemCode || !(await this.ctx.grants.isRegisteredItem(itemCode))) {
      await this.refuse(new HubError('PURPOSE_REQUIRED', itemCode ? `事项编码 ${itemCode} is not a registered service item` : 'purpose.itemCode (事项编码) is required'));
    }
    return itemCode!;
  }

  /** The legal basis for hiding the read from the holder's own view, if any, for a client allowed to give one. */
  async withholdBasis(client: ClientPrincipal): Promise<string | null> {
    const basis = this.purpose?.withholdBasis?.trim() || null;
    if (basis && !client.permissions.includes('withhold')) await this.refuse(new HubError('FORBIDDEN', 'withholdBasis needs the withhold permission, which this client does not hold'));
    return basis;
  }
}
