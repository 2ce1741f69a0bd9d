import { getDirectiveValues, GraphQLIncludeDirective, GraphQLSkipDirective, Kind, type FieldNode, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';

/**
 * The one walker of a selection for every read the hub answers: what a caller selects decides what it needs a grant for
 * and what the audit entry records, so every room reads it the same way. It walks the fields the resolver's own field
 * selects on its result, through inline and named fragments, under every alias (an alias is its field again), and
 * leaves out what `@skip` or `@include` leaves out. `visit` is called for each selected field node, by the field's
 * name; a field selected twice (two aliases, a fragment and the field itself) is visited each time.
 */
export function forEachSelected(info: Pick<GraphQLResolveInfo, 'fieldNodes' | 'fragments' | 'variableValues'>, visit: (name: string, node: FieldNode) => void): void {
  for (const node of info.fieldNodes) walk(node.selectionSet, info, visit, 0);
}

/** Fragments nest; a document that loops them is refused by validation, this bound is a second guard. */
const MAX_FRAGMENT_DEPTH = 32;

// module-level rather than a closure per call: this runs on every base read
function walk(set: SelectionSetNode | undefined, info: Pick<GraphQLResolveInfo, 'fragments' | 'variableValues'>, visit: (name: string, node: FieldNode) => void, depth: number): void {
  if (!set || depth > MAX_FRAGMENT_DEPTH) return;
  for (const s of set.selections) {
    if (s.directives?.length && !included(s, info.variableValues)) continue;
    if (s.kind === Kind.FIELD) visit(s.name.value, s);
    else if (s.kind === Kind.INLINE_FRAGMENT) walk(s.selectionSet, info, visit, depth + 1);
    else {
      const fragment = info.fragments[s.name.value];
      if (fragment && !(fragment.directives?.length && !included(fragment, info.variableValues))) walk(fragment.selectionSet, info, visit, depth + 1);
    }
  }
}

/** Whether @skip and @include (with the operation's variables) keep a selection. */
function included(node: Parameters<typeof getDirectiveValues>[1], variables: Record<string, unknown>): boolean {
  if (getDirectiveValues(GraphQLSkipDirective, node, variables)?.if === true) return false;
  return getDirectiveValues(GraphQLIncludeDirective, node, variables)?.if !== false;
}

/** The distinct names of the fields selected (forEachSelected). */
export function selectedFieldNames(info: Pick<GraphQLResolveInfo, 'fieldNodes' | 'fragments' | 'variableValues'>): Set<string> {
  const names = new Set<string>();
  forEachSelected(info, (name) => names.add(name));
  return names;
}
