-- A licence row (some 4 KB with its two signed forms) is kept whole in its page: the forms go out of line only when
-- the row would not fit a page (8160 bytes), not from 2 KB on. Issuing then writes no TOAST chunks and their index
-- entries, and reading a licence's forms needs no second lookup. The forms stay uncompressed (0013).
ALTER TABLE "licences" SET (toast_tuple_target = 8160);
