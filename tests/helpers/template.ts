/** The migrated database each test file clones. Two checkouts testing at once on one server name their own (HUB_TEST_TEMPLATE). */
export const TEMPLATE_DB = process.env.HUB_TEST_TEMPLATE || 'hub_test_template';
