import Postgres

extension JobStore {
    /// The store's own connection, for tests that look at rows directly (`@_spi(Testing) import JobStore`). The farm's
    /// code never uses it: SQL lives in JobStore's methods.
    @_spi(Testing) public var testConnection: Connection { connection }
}
