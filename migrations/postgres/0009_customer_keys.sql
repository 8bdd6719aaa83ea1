-- Objects (and uploads) written with a customer-provided key (SSE-C): a salted
-- HMAC that checks the key a later request presents. The key itself is never kept.
ALTER TABLE versions ADD COLUMN sse_customer TEXT;
ALTER TABLE uploads ADD COLUMN sse_customer TEXT;
