"""DLMS/COSEM over a link: the HAN push receiver and the client (GET, ACTION) for polling."""
