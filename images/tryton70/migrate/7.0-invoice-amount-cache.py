# Tryton 7.0 migration note for account_invoice ("after"): fill the amount caches of posted and
# paid invoices that came from an earlier series. Runs in trytond-console (pool, transaction).
Invoice = pool.get('account.invoice')
invoices = Invoice.search([('state', 'in', ['posted', 'paid'])])
for invoice in invoices:
    invoice.untaxed_amount_cache = invoice.untaxed_amount
    invoice.tax_amount_cache = invoice.tax_amount
    invoice.total_amount_cache = invoice.total_amount
Invoice.save(invoices)
transaction.commit()
print('filled amount caches of %d invoices' % len(invoices))
